package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hlfs/hlfs/lfs"
)

// NBD wire constants (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md).
const (
	nbdMagic       = "NBDMAGIC"
	nbdOptMagic    = "IHAVEOPT"
	nbdOptRepMagic = 0x0003e889045565a9
	nbdOptAbort    = 2
	nbdOptList     = 3
	nbdOptGo       = 7
	nbdRepAck      = 1
	nbdRepServer   = 2
	nbdRepInfo     = 3
	nbdInfoExport  = 0
	nbdReqMagic    = 0x25609513
	nbdReplyMagic  = 0x67446698
	nbdCmdRead     = 0
	nbdCmdWrite    = 1
	nbdCmdDisc     = 2
	nbdCmdFlush    = 3
)

// nbdClient is just enough of an NBD client to test the wiring: fixed
// newstyle handshake, LIST, GO, and simple replies.
type nbdClient struct {
	t    *testing.T
	conn net.Conn
}

func dialNBD(t *testing.T, network, addr string) *nbdClient {
	t.Helper()
	conn, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := &nbdClient{t: t, conn: conn}
	greeting := c.read(18)
	if string(greeting[:16]) != nbdMagic+nbdOptMagic || binary.BigEndian.Uint16(greeting[16:])&1 == 0 {
		t.Fatalf("greeting %q", greeting)
	}
	c.write(binary.BigEndian.AppendUint32(nil, 1|2)) // FIXED_NEWSTYLE | NO_ZEROES
	return c
}

func (c *nbdClient) read(n int) []byte {
	c.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c.conn, b); err != nil {
		c.t.Fatalf("nbd read: %v", err)
	}
	return b
}

func (c *nbdClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("nbd write: %v", err)
	}
}

func (c *nbdClient) option(opt uint32, data []byte) {
	c.t.Helper()
	b := []byte(nbdOptMagic)
	b = binary.BigEndian.AppendUint32(b, opt)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	c.write(append(b, data...))
}

// optReply reads one option reply: its type and data.
func (c *nbdClient) optReply(opt uint32) (uint32, []byte) {
	c.t.Helper()
	h := c.read(20)
	if binary.BigEndian.Uint64(h) != nbdOptRepMagic || binary.BigEndian.Uint32(h[8:]) != opt {
		c.t.Fatalf("option reply header %x", h)
	}
	return binary.BigEndian.Uint32(h[12:]), c.read(int(binary.BigEndian.Uint32(h[16:])))
}

// list returns the export names.
func (c *nbdClient) list() []string {
	c.t.Helper()
	c.option(nbdOptList, nil)
	var names []string
	for {
		typ, data := c.optReply(nbdOptList)
		switch typ {
		case nbdRepAck:
			return names
		case nbdRepServer:
			n := binary.BigEndian.Uint32(data)
			names = append(names, string(data[4:4+n]))
		default:
			c.t.Fatalf("LIST reply type %#x", typ)
		}
	}
}

// goExport enters transmission on name and returns the export size, or the
// error reply type.
func (c *nbdClient) goExport(name string) (size int64, errType uint32) {
	c.t.Helper()
	data := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	data = append(data, name...)
	data = binary.BigEndian.AppendUint16(data, 0)
	c.option(nbdOptGo, data)
	for {
		typ, data := c.optReply(nbdOptGo)
		switch {
		case typ == nbdRepAck:
			return size, 0
		case typ == nbdRepInfo && binary.BigEndian.Uint16(data) == nbdInfoExport:
			size = int64(binary.BigEndian.Uint64(data[2:]))
		case typ&(1<<31) != 0:
			return 0, typ
		}
	}
}

// nbdCookie numbers the requests of the tests.
var nbdCookie uint64

// request sends a command and returns the reply's error and data.
func (c *nbdClient) request(cmd uint16, off int64, length int, payload []byte) (uint32, []byte) {
	c.t.Helper()
	nbdCookie++
	b := binary.BigEndian.AppendUint32(nil, nbdReqMagic)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, cmd)
	b = binary.BigEndian.AppendUint64(b, nbdCookie)
	b = binary.BigEndian.AppendUint64(b, uint64(off))
	b = binary.BigEndian.AppendUint32(b, uint32(length))
	c.write(append(b, payload...))
	if cmd == nbdCmdDisc {
		return 0, nil
	}
	h := c.read(16)
	if binary.BigEndian.Uint32(h) != nbdReplyMagic || binary.BigEndian.Uint64(h[8:]) != nbdCookie {
		c.t.Fatalf("reply header %x", h)
	}
	errno := binary.BigEndian.Uint32(h[4:])
	if cmd == nbdCmdRead && errno == 0 {
		return 0, c.read(length)
	}
	return errno, nil
}

// startServe runs "hlfs --store STORE serve ARGS..." in the background and
// waits for its log line about volume first; it returns the address the
// line names, the stderr so far, a function that sends the "signal" and
// returns the exit code.
func startServe(t *testing.T, store, first string, args ...string) (addr string, stderr *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr = &syncBuffer{}
	var stdout bytes.Buffer
	c := newCLI(ctx, &stdout, stderr, func(string) string { return "" })
	done := make(chan int, 1)
	go func() { done <- c.main(append([]string{"--store", store, "serve"}, args...)) }()
	re := regexp.MustCompile(`msg="serving ` + regexp.QuoteMeta(first) + ` \([^)]*\) on ([^" ]+)`)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case code := <-done:
			cancel()
			t.Fatalf("serve exited with %d before serving:\n%s", code, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not log its address:\n%s", stderr.String())
		}
	}
	stopped := false
	stop = func() int {
		t.Helper()
		stopped = true
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(40 * time.Second):
			t.Fatalf("serve did not stop:\n%s", stderr.String())
			return -1
		}
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	return addr, stderr, stop
}

func TestServe(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "demo", "--size", "1G")
	mustHLFS(t, store, "create", "other", "--size", "64M", "--block-size", "64K")

	// No names: every volume in the store, opened when a client asks.
	addr, stderr, stop := startServe(t, store, "every volume", "--listen", "127.0.0.1:0")
	if !strings.Contains(stderr.String(), "serving every volume (opened on demand, closed after 1m0s unused) on 127.0.0.1:") {
		t.Errorf("log:\n%s", stderr.String())
	}
	for _, name := range []string{"demo", "other"} {
		if info := statVolume(t, dir, name); info.Owner != nil {
			t.Errorf("%s is owned before any client asked for it: %+v", name, info.Owner)
		}
	}

	c := dialNBD(t, "tcp", addr)
	if names := c.list(); strings.Join(names, ",") != "demo,other" {
		t.Errorf("LIST = %q", names)
	}
	if _, errType := c.goExport("nope"); errType == 0 {
		t.Error("GO of an unknown export succeeded")
	}
	size, errType := c.goExport("demo")
	if errType != 0 || size != 1<<30 {
		t.Fatalf("GO demo: size %d, error %#x", size, errType)
	}
	// Without --admin-socket, the admin socket is in the temporary directory.
	adminSock := filepath.Join(os.TempDir(), fmt.Sprintf("hlfs-%d.sock", os.Getpid()))
	if info := statVolume(t, dir, "demo"); info.Owner == nil || info.Owner.PID != os.Getpid() || info.Owner.Admin != adminSock {
		t.Errorf("demo is not owned while served, or not with the admin socket %s: %+v", adminSock, info.Owner)
	}
	if info := statVolume(t, dir, "other"); info.Owner != nil {
		t.Errorf("other is owned though no client asked for it: %+v", info.Owner)
	}
	wantError(t, hlfs(t, store, "rm", "demo"), 1, "in use")
	data := bytes.Repeat([]byte("hlfs"), 1024)
	if errno, _ := c.request(nbdCmdWrite, 8192, len(data), data); errno != 0 {
		t.Fatalf("WRITE: errno %d", errno)
	}
	if errno, got := c.request(nbdCmdRead, 4096, 3*4096, nil); errno != 0 || !bytes.Equal(got[4096:8192], data) || !isZero(got[:4096]) {
		t.Fatalf("READ: errno %d", errno)
	}
	// The write is not flushed by the client; shutdown must make it durable.
	c.request(nbdCmdDisc, 0, 0, nil)
	c.conn.Close()

	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d after the signal:\n%s", code, stderr.String())
	}
	log := stderr.String()
	for _, want := range []string{"shutting down", "flushing and closing volumes", `msg=stopped`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "level=ERROR") {
		t.Errorf("errors logged:\n%s", log)
	}
	for _, name := range []string{"demo", "other"} {
		if info := statVolume(t, dir, name); info.Owner != nil {
			t.Errorf("%s still owned after serve stopped: %+v", name, info.Owner)
		}
	}
	if got := readVolume(t, dir, "demo")[8192 : 8192+len(data)]; !bytes.Equal(got, data) {
		t.Error("the write did not survive the shutdown")
	}
	mustHLFS(t, store, "fsck", "demo")
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("still listening after shutdown")
	}
	if _, err := os.Lstat(adminSock); !os.IsNotExist(err) {
		t.Errorf("admin socket left behind: %v", err)
	}
}

// Serving a whole store needs no volume at start, and serves the volumes
// created while it runs.
func TestServeEmptyStore(t *testing.T) {
	store, _ := testStore(t)
	mustHLFS(t, store, "init")
	addr, _, _ := startServe(t, store, "every volume", "--listen", "127.0.0.1:0", "--admin-socket", "none", "--idle-close", "0")
	c := dialNBD(t, "tcp", addr)
	if names := c.list(); len(names) != 0 {
		t.Errorf("LIST of an empty store = %q", names)
	}
	mustHLFS(t, store, "create", "late", "--size", "2M")
	if names := c.list(); strings.Join(names, ",") != "late" {
		t.Errorf("LIST after create = %q", names)
	}
	if size, errType := c.goExport("late"); errType != 0 || size != 2<<20 {
		t.Fatalf("GO late: size %d error %#x", size, errType)
	}
	c.conn.Close()
}

func TestServeUnixSocket(t *testing.T) {
	store, _ := testStore(t)
	mustHLFS(t, store, "create", "a", "--size", "1M")
	mustHLFS(t, store, "create", "b", "--size", "1M")
	sock := filepath.Join(t.TempDir(), "nbd.sock")
	// A stale socket file from a server that is gone is replaced.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	// Only the named volume is served; no TCP.
	addr, stderr, stop := startServe(t, store, "b", "--listen", "", "--socket", sock, "b")
	if addr != "unix:"+sock {
		t.Errorf("address %q, want unix:%s", addr, sock)
	}
	if strings.Contains(stderr.String(), "serving a ") {
		t.Errorf("a is served:\n%s", stderr.String())
	}
	c := dialNBD(t, "unix", sock)
	if names := c.list(); strings.Join(names, ",") != "b" {
		t.Errorf("LIST = %q", names)
	}
	c.option(nbdOptAbort, nil)
	c.conn.Close()
	// A second server on the same socket is refused.
	wantError(t, hlfs(t, store, "serve", "--listen", "", "--socket", sock, "--admin-socket", "none", "a"), 1, "another server is listening there")
	if code := stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file left behind: %v", err)
	}
}

func TestServeErrors(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "demo", "--size", "1M")
	mustHLFS(t, store, "create", "busy", "--size", "1M")
	wantError(t, hlfs(t, store, "serve", "--listen", "127.0.0.1:0", "demo", "nope"), 1, "cannot serve nope", `no volume "nope"`)
	wantError(t, hlfs(t, store, "serve", "--listen", "127.0.0.1:0", "demo", "demo"), 1, "volume demo named twice")
	wantError(t, hlfs(t, store, "serve", "--listen", "127.0.0.1:0", "demo@s", "demo@s"), 1, "snapshot demo@s named twice")
	wantError(t, hlfs(t, store, "serve", "--listen", "127.0.0.1:0", "demo@"), 1, `invalid snapshot name ""`)
	wantError(t, hlfs(t, store, "serve", "--listen", "127.0.0.1:0", "nope@s"), 1, "cannot serve nope", `no volume "nope"`)
	wantError(t, hlfs(t, store, "serve", "--listen", "127.0.0.1:0", "--admin-socket", filepath.Join(dir, "no", "such", "a.sock"), "demo"), 1,
		"admin socket: cannot listen on "+filepath.Join(dir, "no", "such", "a.sock"), "no such file or directory")
	wantError(t, hlfs(t, store, "serve", "--listen", "127.0.0.1:0", "x/y"), 1, "invalid volume name")
	wantError(t, hlfs(t, store, "serve", "--listen", "127.0.0.1:0", "demo@s"), 1, "cannot serve demo@s", `no snapshot "s" of volume demo`)
	wantError(t, hlfs(t, store, "serve", "--listen", ""), 2, "nothing to listen on")
	wantError(t, hlfs(t, store, "serve", "--listen", "256.0.0.1:99999", "demo"), 1, "cannot listen on 256.0.0.1:99999")

	// A volume that cannot be opened fails serve before it serves
	// anything, and the volumes it had opened are released. (A volume
	// served elsewhere is served as a standby: issue 12, e2e
	// TestRoamingServeProcesses.)
	wantError(t, hlfs(t, store, "serve", "--listen", "127.0.0.1:0", "demo", "nope"), 1,
		"cannot serve nope", `no volume "nope"`)
	if info := statVolume(t, dir, "demo"); info.Owner != nil {
		t.Errorf("demo still owned after serve failed: %+v", info.Owner)
	}

	// A port in use.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	wantError(t, hlfs(t, store, "serve", "--listen", l.Addr().String(), "demo"), 1,
		"cannot listen on "+l.Addr().String(), "address already in use")
	if info := statVolume(t, dir, "demo"); info.Owner != nil {
		t.Errorf("demo still owned after serve failed: %+v", info.Owner)
	}
}

func TestServeSnapshots(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	mustHLFS(t, store, "create", "vm2", "--size", "2M")
	writeVolume(t, dir, "vm1", 0, fill("one", 4096))
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	writeVolume(t, dir, "vm1", 0, fill("two", 4096))
	mustHLFS(t, store, "snapshot", "create", "vm1@s2")
	mustHLFS(t, store, "snapshot", "create", "vm2@t1")

	// Named: exactly the exports named.
	addr, stderr, stop := startServe(t, store, "vm1@s1", "--listen", "127.0.0.1:0", "--admin-socket", "none", "vm1", "vm1@s1")
	if log := stderr.String(); !strings.Contains(log, "serving vm1@s1 (1 MiB, read-only) on "+addr) ||
		!strings.Contains(log, "serving vm1 (1 MiB) on "+addr) || strings.Contains(log, "admin socket") {
		t.Errorf("log:\n%s", log)
	}
	c := dialNBD(t, "tcp", addr)
	if names := c.list(); strings.Join(names, ",") != "vm1,vm1@s1" {
		t.Errorf("LIST = %q", names)
	}
	for _, name := range []string{"vm1@s2", "vm2", "vm2@t1", "vm1@", "vm1@nope"} {
		if _, errType := c.goExport(name); errType == 0 {
			t.Fatalf("GO %s succeeded", name)
		}
	}
	if size, errType := c.goExport("vm1@s1"); errType != 0 || size != 1<<20 {
		t.Fatalf("GO vm1@s1: size %d error %#x", size, errType)
	}
	if errno, got := c.request(nbdCmdRead, 0, 4096, nil); errno != 0 || !bytes.Equal(got, fill("one", 4096)) {
		t.Errorf("vm1@s1 does not read as the snapshot (errno %d)", errno)
	}
	if errno, _ := c.request(nbdCmdWrite, 0, 512, make([]byte, 512)); errno != nbdEPERM {
		t.Errorf("WRITE to vm1@s1: errno %d, want EPERM", errno)
	}
	c.conn.Close()
	if code := stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}

	// A snapshot alone: its volume is held, not exported.
	addr, _, stop = startServe(t, store, "vm1@s2", "--listen", "127.0.0.1:0", "--admin-socket", "none", "vm1@s2")
	if info := statVolume(t, dir, "vm1"); info.Owner == nil {
		t.Error("vm1 is not held while its snapshot is served")
	}
	c = dialNBD(t, "tcp", addr)
	if names := c.list(); strings.Join(names, ",") != "vm1@s2" {
		t.Errorf("LIST = %q", names)
	}
	if _, errType := c.goExport("vm1"); errType == 0 {
		t.Error("GO vm1 succeeded while only vm1@s2 is served")
	}
	c.conn.Close()
	stop()

	// No names: every volume and every snapshot; LIST shows the snapshots
	// the store index records, and those of open volumes as they are.
	addr, stderr, stop = startServe(t, store, "every volume", "--listen", "127.0.0.1:0", "--admin-socket", "none")
	if !strings.Contains(stderr.String(), "snapshots are served read-only as VOLUME@SNAPSHOT") {
		t.Errorf("log:\n%s", stderr.String())
	}
	c = dialNBD(t, "tcp", addr)
	if names := c.list(); strings.Join(names, ",") != "vm1,vm1@s1,vm1@s2,vm2,vm2@t1" {
		t.Errorf("LIST = %q", names)
	}
	if size, errType := c.goExport("vm2@t1"); errType != 0 || size != 2<<20 {
		t.Fatalf("GO vm2@t1: size %d error %#x", size, errType)
	}
	if errno, got := c.request(nbdCmdRead, 0, 4096, nil); errno != 0 || !isZero(got) {
		t.Errorf("vm2@t1: errno %d", errno)
	}
	c2 := dialNBD(t, "tcp", addr)
	if names := c2.list(); strings.Join(names, ",") != "vm1,vm1@s1,vm1@s2,vm2,vm2@t1" {
		t.Errorf("LIST with vm2 open = %q", names)
	}
	c2.conn.Close()
	c.conn.Close()
	if code := stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	mustHLFS(t, store, "fsck", "vm1")
}

func TestServeAdminSocket(t *testing.T) {
	store, _ := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	mustHLFS(t, store, "create", "vm2", "--size", "1M")
	sock := filepath.Join(t.TempDir(), "admin.sock")
	// A stale socket file from a server that is gone is replaced.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	// A relative path is recorded absolute.
	t.Chdir(filepath.Dir(sock))
	_, stderr, stop := startServe(t, store, "vm1", "--listen", "127.0.0.1:0", "--admin-socket", "admin.sock", "vm1")
	if !strings.Contains(stderr.String(), "admin socket "+sock) {
		t.Errorf("log:\n%s", stderr.String())
	}
	// A second server cannot take a live admin socket.
	wantError(t, hlfs(t, store, "serve", "--listen", "127.0.0.1:0", "--admin-socket", sock, "vm2"), 1,
		"admin socket: cannot listen on "+sock+": another server is listening there")
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	if code := stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("admin socket left behind: %v", err)
	}
}

func TestDefaultAdminSocket(t *testing.T) {
	env := map[string]string{}
	c := newCLI(t.Context(), io.Discard, io.Discard, func(k string) string { return env[k] })
	want := filepath.Join(os.TempDir(), fmt.Sprintf("hlfs-%d.sock", os.Getpid()))
	if got := c.defaultAdminSocket(); got != want {
		t.Errorf("without XDG_RUNTIME_DIR: %s, want %s", got, want)
	}
	env["XDG_RUNTIME_DIR"] = "/run/user/1000"
	if got, want := c.defaultAdminSocket(), fmt.Sprintf("/run/user/1000/hlfs-%d.sock", os.Getpid()); got != want {
		t.Errorf("with XDG_RUNTIME_DIR: %s, want %s", got, want)
	}
}

// The background cleaner's flags. An empty --listen makes serve stop after
// reading them, before it opens anything.
func TestServeGCFlags(t *testing.T) {
	store, _ := testStore(t)
	parse := func(args ...string) (*lfs.CleanerOptions, result) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		c := newCLI(t.Context(), &stdout, &stderr, func(string) string { return "" })
		code := c.main(append([]string{"--store", store, "serve", "--listen", ""}, args...))
		return c.cleaner, result{code, stdout.String(), stderr.String()}
	}
	for _, tc := range []struct {
		args []string
		want *lfs.CleanerOptions
	}{
		{nil, &lfs.CleanerOptions{Interval: time.Second, Trigger: 0.25, Rate: 32 << 20, MaxUtilization: 0.8}},
		{[]string{"--gc-rate", "0"}, &lfs.CleanerOptions{Interval: time.Second, Trigger: 0.25, Rate: -1, MaxUtilization: 0.8}},
		{[]string{"--gc-rate", "1G", "--gc-trigger", "0.5", "--gc-interval", "10ms", "--gc-max-utilization", "0.6"},
			&lfs.CleanerOptions{Interval: 10 * time.Millisecond, Trigger: 0.5, Rate: 1 << 30, MaxUtilization: 0.6}},
		// Off: the other flags are not even checked.
		{[]string{"--no-gc", "--gc-trigger", "7"}, nil},
	} {
		got, r := parse(tc.args...)
		wantError(t, r, 2, "nothing to listen on")
		if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
			t.Errorf("%q: cleaner %+v, want %+v", tc.args, got, tc.want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--gc-rate", "fast"}, `serve: --gc-rate: invalid size "fast"`},
		{[]string{"--gc-rate", ""}, "serve: --gc-rate: want a size, or 0 for no bound"},
		{[]string{"--gc-trigger", "0"}, "--gc-trigger and --gc-max-utilization take a fraction between 0 and 1"},
		{[]string{"--gc-trigger", "1"}, "--gc-trigger and --gc-max-utilization take a fraction between 0 and 1"},
		{[]string{"--gc-max-utilization", "1.2"}, "--gc-trigger and --gc-max-utilization take a fraction between 0 and 1"},
		{[]string{"--gc-interval", "1ms"}, "--gc-interval 1ms: want at least 10ms"},
	} {
		_, r := parse(tc.args...)
		wantError(t, r, 2, tc.want)
	}
}

func TestServeMemoryFlag(t *testing.T) {
	store, _ := testStore(t)
	parse := func(args ...string) (int64, result) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		// GOMEMLIMIT set: the test process's own soft limit stays as it is.
		c := newCLI(t.Context(), &stdout, &stderr, func(k string) string {
			if k == "GOMEMLIMIT" {
				return "off"
			}
			return ""
		})
		code := c.main(append([]string{"--store", store, "serve", "--listen", ""}, args...))
		return c.memory.Limit(), result{code, stdout.String(), stderr.String()}
	}
	for _, tc := range []struct {
		args []string
		want int64
	}{{nil, 1 << 30}, {[]string{"--memory", "256M"}, 256 << 20}, {[]string{"--memory", "16M"}, 16 << 20}} {
		got, r := parse(tc.args...)
		wantError(t, r, 2, "nothing to listen on")
		if got != tc.want {
			t.Errorf("%q: budget %d, want %d", tc.args, got, tc.want)
		}
	}
	_, r := parse("--memory", "8M")
	wantError(t, r, 2, "serve: --memory 8M: want at least 16M")
	_, r = parse("--memory", "lots")
	wantError(t, r, 2, `serve: --memory: invalid size "lots"`)
}
