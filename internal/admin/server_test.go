package admin

import (
	"bufio"
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
	if err := Call(path, create, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// The handler's error comes back as a *ServerError, in one line.
	err := Call(path, create, 5*time.Second)
	var se *ServerError
	if !errors.As(err, &se) || se.Msg != "snapshot vm1@s1 already exists; second line" {
		t.Errorf("second create: %#v", err)
	}
	if err := Call(path, Request{Op: OpSnapshotRemove, Volume: "vm1", Snapshot: "s1"}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	err = Call(path, Request{Op: OpSnapshotRemove, Volume: "vm1", Snapshot: "s1"}, 5*time.Second)
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
	if err := Call(path, Request{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: "s"}, 5*time.Second); err != nil {
		t.Errorf("after malformed requests: %v", err)
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
	err := Call(path, Request{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: "s"}, time.Second)
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
	if err := Call(path, Request{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: "s"}, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	// A live server is not replaced.
	if _, err := Listen(path, newFakeHandler()); !errors.Is(err, ErrInUse) {
		t.Errorf("Listen on a live socket: %v, want ErrInUse", err)
	}
	if err := Call(path, Request{Op: OpSnapshotRemove, Volume: "vm1", Snapshot: "s"}, 5*time.Second); err != nil {
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
	err := Call(path, Request{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: "s"}, 200*time.Millisecond)
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
			errs <- Call(path, Request{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: fmt.Sprint("s", i)}, 10*time.Second)
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
