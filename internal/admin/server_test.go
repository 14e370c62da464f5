package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlfs/hlfs/lfs"
	"github.com/stretchr/testify/require"
)

// fakeHandler keeps snapshots as "vol@snap" in a set. Calls wait on gate
// when it is not nil, after signalling entered.
type fakeHandler struct {
	gate    chan struct{}
	entered chan struct{}

	mu struct {
		sync.Mutex
		snaps map[string]bool
		calls []string
	}
}

var _ Handler = (*fakeHandler)(nil)

func newFakeHandler() *fakeHandler {
	h := &fakeHandler{}
	h.mu.snaps = map[string]bool{}
	return h
}

func (h *fakeHandler) wait() {
	if h.gate != nil {
		h.entered <- struct{}{}
		<-h.gate
	}
}

func (h *fakeHandler) CreateSnapshot(vol, snap string) error {
	h.wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mu.calls = append(h.mu.calls, "create "+vol+"@"+snap)
	if vol != "vm1" {
		return fmt.Errorf("volume %s is not served here", vol)
	}
	if h.mu.snaps[vol+"@"+snap] {
		return fmt.Errorf("snapshot %s@%s already exists\nsecond line", vol, snap)
	}
	h.mu.snaps[vol+"@"+snap] = true
	return nil
}

func (h *fakeHandler) DeleteSnapshot(vol, snap string) error {
	h.wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mu.calls = append(h.mu.calls, "rm "+vol+"@"+snap)
	if !h.mu.snaps[vol+"@"+snap] {
		return fmt.Errorf("no snapshot %s of %s", snap, vol)
	}
	delete(h.mu.snaps, vol+"@"+snap)
	return nil
}

// fakeStats is what the fake handler's GC returns.
var fakeStats = lfs.GCStats{Passes: 1, SegmentsCleaned: 2, SegmentsDeleted: 3, BytesCopied: 4096, BytesDeleted: 1 << 20}

func (h *fakeHandler) GC(vol string, opts GCOptions) (lfs.GCStats, error) {
	h.wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mu.calls = append(h.mu.calls, fmt.Sprintf("gc %s rate=%d max=%v", vol, opts.Rate, opts.MaxUtilization))
	if vol != "vm1" {
		return lfs.GCStats{}, fmt.Errorf("volume %s is not served here", vol)
	}
	return fakeStats, nil
}

// fakeScrub is what the fake handler's Scrub returns.
var fakeScrub = lfs.ScrubReport{Records: 3, BytesVerified: 12480, Damaged: []lfs.DamagedRange{{Object: "vm1/seg/1", Offset: 4096, Length: 4096,
	Reason: "checksum mismatch", ReadBy: []lfs.DamagedRead{{Name: "vm1@s1", Offset: 8192, Length: 4096}}}}}

func (h *fakeHandler) Scrub(vol string, opts ScrubOptions) (lfs.ScrubReport, error) {
	h.wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mu.calls = append(h.mu.calls, fmt.Sprintf("scrub %s rate=%d", vol, opts.Rate))
	if vol != "vm1" {
		return lfs.ScrubReport{}, fmt.Errorf("volume %s is not served here", vol)
	}
	return fakeScrub, nil
}

func (h *fakeHandler) calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.mu.calls...)
}

// listen starts a server on a new socket and closes it at the end of the
// test.
func listen(t *testing.T, h Handler) (*Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.sock")
	s, err := Listen(path, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// rawCall sends line as is and returns the reply line.
func rawCall(t *testing.T, path, line string) string {
	t.Helper()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(line)); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(line, "\n") {
		conn.(*net.UnixConn).CloseWrite()
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the reply to %q: %v", line, err)
	}
	return reply
}

func TestCallRoundTrip(t *testing.T) {
	h := newFakeHandler()
	s, path := listen(t, h)
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	create := Request{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: "s1"}
	if err := Call(t.Context(), path, create, 5*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	// The handler's error comes back as a *ServerError, in one line.
	err := Call(t.Context(), path, create, 5*time.Second, nil)
	var se *ServerError
	if !errors.As(err, &se) || se.Msg != "snapshot vm1@s1 already exists; second line" {
		t.Errorf("second create: %#v", err)
	}
	if err := Call(t.Context(), path, Request{Op: OpSnapshotRemove, Volume: "vm1", Snapshot: "s1"}, 5*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	err = Call(t.Context(), path, Request{Op: OpSnapshotRemove, Volume: "vm1", Snapshot: "s1"}, 5*time.Second, nil)
	if !errors.As(err, &se) || se.Error() != "no snapshot s1 of vm1" {
		t.Errorf("second rm: %v", err)
	}
	want := "create vm1@s1,create vm1@s1,rm vm1@s1,rm vm1@s1"
	if got := strings.Join(h.calls(), ","); got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
}

func TestWireFormat(t *testing.T) {
	_, path := listen(t, newFakeHandler())
	if got := rawCall(t, path, `{"op":"snapshot-create","volume":"vm1","snapshot":"s1"}`+"\n"); got != `{"ok":true}`+"\n" {
		t.Errorf("reply %q", got)
	}
	if got := rawCall(t, path, `{"op":"snapshot-rm","volume":"vm1","snapshot":"nope"}`+"\n"); got != `{"error":"no snapshot nope of vm1"}`+"\n" {
		t.Errorf("reply %q", got)
	}
}

// Malformed requests get an error reply and change nothing; the server
// keeps serving.
func TestMalformedRequests(t *testing.T) {
	h := newFakeHandler()
	_, path := listen(t, h)
	for _, tc := range []struct{ line, want string }{
		{"not json\n", "malformed request"},
		{"{}\n", `unknown request ""`},
		{`{"op":"format-disk","volume":"vm1","snapshot":"s"}` + "\n", `unknown request "format-disk"`},
		{`{"op":"snapshot-create","volume":"vm1"}` + "\n", "needs a volume and a snapshot"},
		{`{"op":"snapshot-create","snapshot":"s"}` + "\n", "needs a volume and a snapshot"},
		{`{"op":"snapshot-create","volume":"vm1","snapshot":"s","force":true}` + "\n", `unknown field "force"`},
		{`{"op":"snapshot-create","volume":"vm1","snapshot":"s"} {}` + "\n", "more than one JSON value"},
		{`{"op":"snapshot-create","volume":"vm1","snapshot":"s"}`, "no newline"},
		{strings.Repeat("x", maxMessage+10) + "\n", "longer than"},
		{`["snapshot-create"]` + "\n", "malformed request"},
		{`{"op":"snapshot-create","volume":"vm1","snapshot":"s","gc":{}}` + "\n", "snapshot-create takes no gc options"},
		{`{"op":"gc"}` + "\n", "gc needs a volume"},
		{`{"op":"gc","volume":"vm1","snapshot":"s"}` + "\n", "gc takes no snapshot"},
		{`{"op":"gc","volume":"vm1","gc":{"rate":-1}}` + "\n", "rate -1 is negative"},
		{`{"op":"gc","volume":"vm1","gc":{"max_utilization":1.5}}` + "\n", "max_utilization 1.5 is not from 0 to 1"},
		{`{"op":"gc","volume":"vm1","gc":{"max_utilization":-0.1}}` + "\n", "max_utilization -0.1 is not from 0 to 1"},
		{`{"op":"gc","volume":"vm1","gc":{"rate":"fast"}}` + "\n", "malformed request"},
		{`{"op":"gc","volume":"vm1","gc":{"now":true}}` + "\n", `unknown field "now"`},
	} {
		got := rawCall(t, path, tc.line)
		var resp response
		if err := json.Unmarshal([]byte(got), &resp); err != nil || resp.OK || !strings.Contains(resp.Error, tc.want) {
			short := tc.line[:min(len(tc.line), 60)]
			t.Errorf("%q: reply %q, want an error with %q", short, got, tc.want)
		}
	}
	if calls := h.calls(); len(calls) != 0 {
		t.Errorf("malformed requests reached the handler: %q", calls)
	}
	if err := Call(t.Context(), path, Request{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: "s"}, 5*time.Second, nil); err != nil {
		t.Errorf("after malformed requests: %v", err)
	}
}

func TestCallGC(t *testing.T) {
	h := newFakeHandler()
	_, path := listen(t, h)
	var stats lfs.GCStats
	req := Request{Op: OpGC, Volume: "vm1", GC: &GCOptions{Rate: 1 << 20, MaxUtilization: 0.5}}
	if err := Call(t.Context(), path, req, 0, &stats); err != nil {
		t.Fatal(err)
	}
	if stats != fakeStats {
		t.Errorf("stats %+v, want %+v", stats, fakeStats)
	}
	// No options: the server's defaults.
	stats = lfs.GCStats{}
	if err := Call(t.Context(), path, Request{Op: OpGC, Volume: "vm1"}, 5*time.Second, &stats); err != nil || stats != fakeStats {
		t.Errorf("gc without options: %+v, %v", stats, err)
	}
	// The handler's error comes back as a *ServerError; the result is not
	// touched.
	stats = lfs.GCStats{}
	err := Call(t.Context(), path, Request{Op: OpGC, Volume: "vm2"}, 5*time.Second, &stats)
	var se *ServerError
	if !errors.As(err, &se) || se.Msg != "volume vm2 is not served here" || stats != (lfs.GCStats{}) {
		t.Errorf("gc of an unknown volume: %v, stats %+v", err, stats)
	}
	// A request without a result cannot fill one.
	err = Call(t.Context(), path, Request{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: "s"}, 5*time.Second, &stats)
	if err == nil || errors.As(err, &se) || !strings.Contains(err.Error(), "no result") {
		t.Errorf("snapshot-create with a result: %v", err)
	}
	want := "gc vm1 rate=1048576 max=0.5,gc vm1 rate=0 max=0,gc vm2 rate=0 max=0,create vm1@s"
	if got := strings.Join(h.calls(), ","); got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
}

func TestGCWireFormat(t *testing.T) {
	_, path := listen(t, newFakeHandler())
	want := `{"ok":true,"result":{"passes":1,"segments_cleaned":2,"segments_deleted":3,"bytes_copied":4096,"bytes_deleted":1048576}}` + "\n"
	if got := rawCall(t, path, `{"op":"gc","volume":"vm1","gc":{"rate":1024,"max_utilization":0.8}}`+"\n"); got != want {
		t.Errorf("reply %q, want %q", got, want)
	}
	if got := rawCall(t, path, `{"op":"gc","volume":"vm1"}`+"\n"); got != want {
		t.Errorf("reply %q, want %q", got, want)
	}
	b, err := json.Marshal(Request{Op: OpGC, Volume: "vm1", GC: &GCOptions{MaxUtilization: 0.8}})
	if err != nil || string(b) != `{"op":"gc","volume":"vm1","gc":{"max_utilization":0.8}}` {
		t.Errorf("gc request encodes as %s (%v)", b, err)
	}
	b, err = json.Marshal(Request{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: "s1"})
	if err != nil || string(b) != `{"op":"snapshot-create","volume":"vm1","snapshot":"s1"}` {
		t.Errorf("snapshot request encodes as %s (%v)", b, err)
	}
}

// Ending the context stops the wait for a request the server is still
// carrying out; the server finishes it all the same.
func TestCallContextEnds(t *testing.T) {
	h := newFakeHandler()
	h.gate, h.entered = make(chan struct{}), make(chan struct{}, 1)
	_, path := listen(t, h)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Call(ctx, path, Request{Op: OpGC, Volume: "vm1"}, 0, &lfs.GCStats{}) }()
	<-h.entered
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), path) {
			t.Errorf("Call after cancel: %v, want context.Canceled naming the socket", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Call did not return after its context ended")
	}
	close(h.gate)
	// Already ended: no connection at all.
	err := Call(ctx, path, Request{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: "s"}, time.Second, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Call with an ended context: %v", err)
	}
	// The server carried out the first request; the second never reached it.
	deadline := time.Now().Add(10 * time.Second)
	for len(h.calls()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := strings.Join(h.calls(), ","); got != "gc vm1 rate=0 max=0" {
		t.Errorf("calls %q", got)
	}
}

func TestSocketPermissions(t *testing.T) {
	_, path := listen(t, newFakeHandler())
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
}

func TestCloseRemovesSocket(t *testing.T) {
	s, path := listen(t, newFakeHandler())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket file left behind: %v", err)
	}
	err := Call(t.Context(), path, Request{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: "s"}, time.Second, nil)
	var se *ServerError
	if err == nil || errors.As(err, &se) || !strings.Contains(err.Error(), "cannot reach "+path) {
		t.Errorf("Call after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	// A socket file whose server is gone.
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	s, err := Listen(path, newFakeHandler())
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer s.Close()
	if err := Call(t.Context(), path, Request{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: "s"}, 5*time.Second, nil); err != nil {
		t.Fatal(err)
	}

	// A live server is not replaced.
	if _, err := Listen(path, newFakeHandler()); !errors.Is(err, ErrInUse) {
		t.Errorf("Listen on a live socket: %v, want ErrInUse", err)
	}
	if err := Call(t.Context(), path, Request{Op: OpSnapshotRemove, Volume: "vm1", Snapshot: "s"}, 5*time.Second, nil); err != nil {
		t.Errorf("the first server stopped answering: %v", err)
	}

	// Something that is not a socket is never removed.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file, newFakeHandler()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen on a regular file: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep" {
		t.Errorf("the file was touched: %q, %v", b, err)
	}
	if _, err := Listen(filepath.Join(t.TempDir(), "no", "dir", "s.sock"), newFakeHandler()); err == nil ||
		!strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("Listen in a missing directory: %v", err)
	}
}

// A slow handler makes Call time out; Close waits for it to finish.
func TestTimeoutAndCloseWaits(t *testing.T) {
	h := newFakeHandler()
	h.gate, h.entered = make(chan struct{}), make(chan struct{}, 1)
	s, path := listen(t, h)
	start := time.Now()
	err := Call(t.Context(), path, Request{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: "s"}, 200*time.Millisecond, nil)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), path) {
		t.Errorf("Call to a stuck handler: %v, want ErrTimeout naming the socket", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Call took %v with a 200ms timeout", d)
	}
	<-h.entered
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a request was being handled", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(h.gate)
	select {
	case err := <-closed:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after the handler finished")
	}
	if got := h.calls(); len(got) != 1 {
		t.Errorf("calls %q", got)
	}
}

// A client that connects and sends nothing does not hold up Close.
func TestCloseDropsIdleConnections(t *testing.T) {
	s, path := listen(t, newFakeHandler())
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte(`{"op":`)) // half a request
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v with an idle client", d)
	}
}

func TestConcurrentCalls(t *testing.T) {
	h := newFakeHandler()
	_, path := listen(t, h)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			errs <- Call(t.Context(), path, Request{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: fmt.Sprint("s", i)}, 10*time.Second, nil)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := len(h.calls()); n != 32 {
		t.Errorf("%d calls handled, want 32", n)
	}
}

// TestScrubRequest: a scrub request reaches the handler with its rate and
// its report comes back whole; malformed ones are refused.
func TestScrubRequest(t *testing.T) {
	h := newFakeHandler()
	_, path := listen(t, h)
	var rep lfs.ScrubReport
	require.NoError(t, Call(t.Context(), path, Request{Op: OpScrub, Volume: "vm1", Scrub: &ScrubOptions{Rate: 1 << 20}}, 5*time.Second, &rep))
	require.Equal(t, fakeScrub, rep)
	require.Equal(t, []string{"scrub vm1 rate=1048576"}, h.calls())
	for _, bad := range []Request{
		{Op: OpScrub},
		{Op: OpScrub, Volume: "vm1", Snapshot: "s1"},
		{Op: OpScrub, Volume: "vm1", Scrub: &ScrubOptions{Rate: -1}},
		{Op: OpScrub, Volume: "vm1", GC: &GCOptions{}},
		{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: "s", Scrub: &ScrubOptions{}},
	} {
		err := Call(t.Context(), path, bad, 5*time.Second, nil)
		require.ErrorContains(t, err, "malformed request", "%+v", bad)
	}
	require.ErrorContains(t, Call(t.Context(), path, Request{Op: OpScrub, Volume: "vm2"}, 5*time.Second, &rep), "not served here")
}
