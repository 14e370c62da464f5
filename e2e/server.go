package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server backends, selected with HLFS_E2E_SERVER.
const (
	// BackendHLFS runs `hlfs serve` on a file:// store. The binary is
	// HLFS_BIN if set, else built from ./cmd/hlfs once per test process.
	BackendHLFS = "hlfs"
	// BackendQemuNBD serves raw image files with qemu-nbd (one volume) or
	// qemu-storage-daemon (several), page-cache writeback, discard=unmap.
	// It is the reference the harness is validated against.
	BackendQemuNBD = "qemu-nbd"
)

func backendFromEnv() string {
	if b := os.Getenv("HLFS_E2E_SERVER"); b != "" {
		return b
	}
	return BackendHLFS
}

func backendTools(backend string) []string {
	switch backend {
	case BackendQemuNBD:
		return []string{"qemu-nbd", "qemu-storage-daemon"}
	default:
		if os.Getenv("HLFS_BIN") != "" {
			return nil
		}
		return []string{"go"} // to build ./cmd/hlfs
	}
}

// Volume is one exported volume: the export name equals the volume name.
type Volume struct {
	Name string
	Size int64 // bytes
}

// Server is an NBD server process under test, listening on 127.0.0.1:Port.
// It keeps its store and port across Stop/Kill and Start, so a restarted
// server serves the same volumes at the same URIs. Not safe for concurrent use.
type Server struct {
	Backend string
	Dir     string // the store directory (hlfs) or image directory (qemu-nbd)
	Addr    string // 127.0.0.1:PORT
	Volumes []Volume
	// Exports, when not nil, replaces the names of Volumes as the
	// arguments of `hlfs serve` from the next Start on (VOLUME or
	// VOLUME@SNAPSHOT); empty but not nil serves every volume and snapshot
	// in the store. hlfs backend only.
	Exports []string
	// AdminSocket, when set, is passed to `hlfs serve --admin-socket`.
	AdminSocket string
	// Store, when set, is the store URI of the hlfs backend (e.g.
	// hdfs://127.0.0.1:9000/dir) instead of file://Dir; set it with
	// NewServerOn so that the volumes are created there.
	Store string
	// ServeArgs are extra `hlfs serve` arguments (e.g. --journal DIR),
	// placed before the export names; read by every Start.
	ServeArgs []string
	// Env is extra KEY=VALUE environment of the server process and of the
	// hlfs commands run on its store (e.g. HLFS_HOSTNAME=other-host).
	Env []string

	tb      testing.TB
	bin     string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has been waited for
	waitErr error
}

// NewServer creates the volumes on a fresh store in a temporary directory
// and starts serving them. The server is killed when the test ends; on test
// failure the tail of its log is printed.
func NewServer(tb testing.TB, vols ...Volume) *Server {
	tb.Helper()
	s := newServer(tb, vols...)
	s.Start()
	return s
}

// newServer is NewServer without the Start, so that a test can set Exports
// or AdminSocket before the first one.
func newServer(tb testing.TB, vols ...Volume) *Server {
	tb.Helper()
	return newServerOn(tb, "", nil, vols...)
}

// NewServerOn is NewServer on the hlfs store at storeURI (e.g. an HDFS
// folder; "" for a fresh file:// store), creating the volumes there with
// the extra `hlfs create` arguments createArgs (e.g. --replication 2). It
// does not start the server: set ServeArgs or Env first, then Start.
func NewServerOn(tb testing.TB, storeURI string, createArgs []string, vols ...Volume) *Server {
	tb.Helper()
	return newServerOn(tb, storeURI, createArgs, vols...)
}

func newServerOn(tb testing.TB, storeURI string, createArgs []string, vols ...Volume) *Server {
	tb.Helper()
	if len(vols) == 0 {
		tb.Fatal("NewServer: no volumes")
	}
	base := tb.TempDir()
	s := &Server{
		Backend: backendFromEnv(),
		Dir:     filepath.Join(base, "store"),
		Addr:    "127.0.0.1:" + strconv.Itoa(freePort(tb)),
		Volumes: vols,
		Store:   storeURI,
		tb:      tb,
		logPath: filepath.Join(base, "server.log"),
	}
	if storeURI != "" && s.Backend != BackendHLFS {
		tb.Fatalf("store %s: only the hlfs backend serves a store URI (HLFS_E2E_SERVER=%s)", storeURI, s.Backend)
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if s.Running() {
			s.signal(syscall.SIGKILL)
			<-s.done
		}
		if tb.Failed() {
			if b, err := os.ReadFile(s.logPath); err == nil {
				tb.Logf("server log (%s) tail:\n%s", s.logPath, tail(string(b), 40))
			}
		}
	})
	switch s.Backend {
	case BackendHLFS:
		s.bin = hlfsBinary(tb)
		for _, v := range vols {
			s.hlfs(append([]string{"create", v.Name, "--size", sizeArg(v.Size)}, createArgs...)...)
		}
	case BackendQemuNBD:
		for _, v := range vols {
			// Not qemu-img create: it allocates the first 4 KiB.
			f, err := os.OpenFile(s.image(v.Name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err == nil {
				err = f.Truncate(v.Size)
				f.Close()
			}
			if err != nil {
				tb.Fatal(err)
			}
		}
	default:
		tb.Fatalf("HLFS_E2E_SERVER=%q: want %q or %q", s.Backend, BackendHLFS, BackendQemuNBD)
	}
	return s
}

// URI returns the NBD URI of a volume.
func (s *Server) URI(vol string) string { return "nbd://" + s.Addr + "/" + vol }

// Running reports whether the server process is alive (not yet reaped).
func (s *Server) Running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// PID returns the server's process id (0 when not running).
func (s *Server) PID() int {
	if !s.Running() {
		return 0
	}
	return s.cmd.Process.Pid
}

// Start starts the server and waits until it accepts connections.
func (s *Server) Start() {
	s.tb.Helper()
	if s.Running() {
		s.tb.Fatal("Server.Start: already running")
	}
	var args []string
	name := s.bin
	switch s.Backend {
	case BackendHLFS:
		args = []string{"--store", s.StoreURI(), "serve", "--listen", s.Addr}
		if s.AdminSocket != "" {
			args = append(args, "--admin-socket", s.AdminSocket)
		}
		args = append(args, s.ServeArgs...)
		if s.Exports != nil {
			args = append(args, s.Exports...)
		} else {
			args = append(args, s.names()...)
		}
	case BackendQemuNBD:
		name, args = s.qemuArgs()
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.tb.Fatal(err)
	}
	fmt.Fprintf(logf, "=== %s start: %s %s\n", time.Now().Format(time.RFC3339Nano), name, strings.Join(args, " "))
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if len(s.Env) > 0 {
		cmd.Env = append(os.Environ(), s.Env...)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.tb.Fatalf("starting %s: %v", name, err)
	}
	s.cmd, s.done, s.waitErr = cmd, make(chan struct{}), nil
	go func() {
		s.waitErr = cmd.Wait()
		fmt.Fprintf(logf, "=== %s exit: %v\n", time.Now().Format(time.RFC3339Nano), s.waitErr)
		logf.Close()
		close(s.done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if nbdGreets(s.Addr, 200*time.Millisecond) {
			return
		}
		select {
		case <-s.done:
			s.tb.Fatalf("server exited during start-up (%v); log tail:\n%s", s.waitErr, s.logTail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("server not listening on %s after 60 s; log tail:\n%s", s.Addr, s.logTail())
		}
	}
}

// nbdGreets reports whether the NBD server on TCP addr sends its greeting
// within timeout. Accepting a connection is not enough: hlfs serve listens
// before it opens its volumes, and greets only once they are open.
func nbdGreets(addr string, timeout time.Duration) bool {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(timeout))
	magic := make([]byte, 8)
	_, err = io.ReadFull(c, magic)
	return err == nil && string(magic) == "NBDMAGIC"
}

// Stop sends SIGTERM and waits (up to 60 s) for the server to drain, make
// its data durable and exit; the test fails unless it exits with status 0.
func (s *Server) Stop() {
	s.tb.Helper()
	if !s.Running() {
		s.tb.Fatal("Server.Stop: not running")
	}
	t0 := time.Now()
	s.signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		s.signal(syscall.SIGKILL)
		<-s.done
		s.tb.Fatalf("server ignored SIGTERM for 60 s; log tail:\n%s", s.logTail())
	}
	if s.waitErr != nil {
		s.tb.Fatalf("server exited with %v after SIGTERM; log tail:\n%s", s.waitErr, s.logTail())
	}
	s.tb.Logf("server stopped by SIGTERM in %v", time.Since(t0).Round(time.Millisecond))
}

// Kill sends SIGKILL and reaps the process: nothing is drained or synced.
func (s *Server) Kill() {
	s.tb.Helper()
	if !s.Running() {
		s.tb.Fatal("Server.Kill: not running")
	}
	s.signal(syscall.SIGKILL)
	<-s.done
}

// Signaller returns a function that sends a signal to the running server
// process without waiting; unlike Stop and Kill it may be called from any
// goroutine (e.g. a GuestOptions.OnLine callback). Reap the process with
// WaitExit on the test goroutine afterwards.
func (s *Server) Signaller() func(syscall.Signal) error {
	s.tb.Helper()
	if !s.Running() {
		s.tb.Fatal("Server.Signaller: not running")
	}
	p := s.cmd.Process
	return func(sig syscall.Signal) error { return p.Signal(sig) }
}

// WaitExit waits up to timeout for the server process to exit and returns
// its wait status error (nil for exit 0); it fails the test on timeout.
func (s *Server) WaitExit(timeout time.Duration) error {
	s.tb.Helper()
	select {
	case <-s.done:
		return s.waitErr
	case <-time.After(timeout):
		s.tb.Fatalf("server still running after %v", timeout)
		return nil
	}
}

// Restart is Stop then Start.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	s.Start()
}

// Fsck checks a stopped server's volume: `hlfs fsck VOL` must exit 0. For
// the qemu-nbd backend there is nothing to check (raw files).
func (s *Server) Fsck(vol string) {
	s.tb.Helper()
	if s.Running() {
		s.tb.Fatal("Server.Fsck: stop the server first")
	}
	if s.Backend == BackendHLFS {
		out := s.hlfs("fsck", vol)
		s.tb.Logf("hlfs fsck %s: %s", vol, strings.TrimSpace(out))
	}
}

// StoreBytes returns the bytes the store directory occupies on disk.
func (s *Server) StoreBytes() int64 {
	var n int64
	filepath.Walk(s.Dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}

func (s *Server) signal(sig syscall.Signal) {
	if err := s.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.tb.Logf("signal %v: %v", sig, err)
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	return tail(string(b), 40)
}

func (s *Server) names() []string {
	var n []string
	for _, v := range s.Volumes {
		n = append(n, v.Name)
	}
	return n
}

func (s *Server) image(vol string) string { return filepath.Join(s.Dir, vol+".img") }

// StoreURI returns the store the hlfs backend serves: Store, else file://Dir.
func (s *Server) StoreURI() string {
	if s.Store != "" {
		return s.Store
	}
	return "file://" + s.Dir
}

// hlfs runs one hlfs subcommand on the store (with Env) and fails the test
// if it fails.
func (s *Server) hlfs(args ...string) string {
	s.tb.Helper()
	cmd := exec.Command(s.bin, append([]string{"--store", s.StoreURI()}, args...)...)
	if len(s.Env) > 0 {
		cmd.Env = append(os.Environ(), s.Env...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.tb.Fatalf("hlfs --store %s %s: %v\n%s", s.StoreURI(), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (s *Server) qemuArgs() (string, []string) {
	host, port, _ := net.SplitHostPort(s.Addr)
	if len(s.Volumes) == 1 {
		v := s.Volumes[0]
		return "qemu-nbd", []string{"-f", "raw", "-x", v.Name, "-b", host, "-p", port,
			"--persistent", "--shared=16", "--cache=writeback", "--discard=unmap", s.image(v.Name)}
	}
	args := []string{"--nbd-server", "addr.type=inet,addr.host=" + host + ",addr.port=" + port + ",max-connections=16"}
	for i, v := range s.Volumes {
		n := "n" + strconv.Itoa(i)
		args = append(args,
			"--blockdev", "driver=file,filename="+s.image(v.Name)+",node-name=f"+n+",cache.direct=off,discard=unmap",
			"--blockdev", "driver=raw,file=f"+n+",node-name="+n+",discard=unmap",
			"--export", "type=nbd,id=e"+n+",node-name="+n+",name="+v.Name+",writable=on")
	}
	return "qemu-storage-daemon", args
}

// sizeArg formats a size for `hlfs create --size`.
func sizeArg(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "G"
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "M"
	case n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "K"
	}
	return strconv.FormatInt(n, 10)
}

func freePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var (
	hlfsOnce sync.Once
	hlfsPath string
	hlfsErr  error
	hlfsDir  string
)

// hlfsBinary returns HLFS_BIN, or builds ./cmd/hlfs of this module once.
func hlfsBinary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("HLFS_BIN"); p != "" {
		// Relative to the working directory (e2e/ under go test) or,
		// failing that, to the module root.
		if !filepath.IsAbs(p) {
			if _, err := os.Stat(p); err != nil {
				if root, err := moduleRoot(); err == nil {
					p = filepath.Join(root, p)
				}
			}
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := os.Stat(abs); err != nil {
			tb.Fatalf("HLFS_BIN: %v", err)
		}
		return abs
	}
	hlfsOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			hlfsErr = err
			return
		}
		hlfsDir, err = os.MkdirTemp("", "hlfs-e2e-bin-")
		if err != nil {
			hlfsErr = err
			return
		}
		out := filepath.Join(hlfsDir, "hlfs")
		cmd := exec.Command("go", "build", "-o", out, "./cmd/hlfs")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			hlfsErr = fmt.Errorf("go build ./cmd/hlfs in %s: %v\n%s", root, err, b)
			return
		}
		hlfsPath = out
	})
	if hlfsErr != nil {
		tb.Fatalf("%v\n(set HLFS_BIN to a built binary, or HLFS_E2E_SERVER=qemu-nbd to test the harness itself)", hlfsErr)
	}
	return hlfsPath
}

func moduleRoot() (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(gomod))), nil
}

// CleanupBinaries removes the hlfs binary built for this test process; call
// it from TestMain after the tests ran.
func CleanupBinaries() {
	if hlfsDir != "" {
		os.RemoveAll(hlfsDir)
	}
}
