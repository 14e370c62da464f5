package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// requireHLFS skips a test of hlfs-only features (snapshots, clones) when
// HLFS_E2E_SERVER selects another backend: qemu-nbd has nothing to test.
func requireHLFS(tb testing.TB) {
	tb.Helper()
	if b := backendFromEnv(); b != BackendHLFS {
		tb.Skipf("snapshots and clones are hlfs features; HLFS_E2E_SERVER=%s", b)
	}
}

// newServeAllServer creates the volumes on a fresh store and starts
// `hlfs serve` with no volume names (every volume and every snapshot,
// including snapshots taken while it serves) and an admin socket of its own.
func newServeAllServer(tb testing.TB, vols ...Volume) *Server {
	tb.Helper()
	s := newServer(tb, vols...)
	s.Exports = []string{}
	s.AdminSocket = adminSocketPath(tb)
	s.Start()
	return s
}

// adminSocketPath returns a fresh admin socket path in a short directory
// (a Unix socket path must fit in 108 bytes; t.TempDir paths can be long).
func adminSocketPath(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "hlfs-adm-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "admin.sock")
}

// sibling returns a second, not yet started hlfs server on the same store,
// with its own port, log and admin socket, serving exports. It is killed
// when the test ends.
func (s *Server) sibling(tb testing.TB, exports ...string) *Server {
	tb.Helper()
	base := tb.TempDir()
	o := &Server{
		Backend:     s.Backend,
		Dir:         s.Dir,
		Addr:        "127.0.0.1:" + strconv.Itoa(freePort(tb)),
		Exports:     append([]string{}, exports...),
		AdminSocket: adminSocketPath(tb),
		tb:          tb,
		bin:         s.bin,
		logPath:     filepath.Join(base, "server.log"),
	}
	tb.Cleanup(func() {
		if o.Running() {
			o.signal(syscall.SIGKILL)
			<-o.done
		}
		if tb.Failed() {
			tb.Logf("second server log (%s) tail:\n%s", o.logPath, o.logTail())
		}
	})
	return o
}

// tryHLFS runs one hlfs subcommand on the store and returns its combined
// output and error, for commands that are expected to fail.
func (s *Server) tryHLFS(args ...string) (string, error) {
	out, err := exec.Command(s.bin, append([]string{"--store", "file://" + s.Dir}, args...)...).CombinedOutput()
	return string(out), err
}

// logText returns the server's whole log (every start of it).
func (s *Server) logText() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// exportNames lists the exports an NBD server offers (NBD_OPT_LIST).
func exportNames(tb testing.TB, addr string) []string {
	tb.Helper()
	var names []string
	for _, e := range nbdinfo(tb, "--list", "nbd://"+addr).Exports {
		names = append(names, e.Name)
	}
	return names
}

// missingMarkers returns the markers that are not a whole line of console.
func missingMarkers(console string, markers ...string) []string {
	have := map[string]bool{}
	for _, l := range strings.Split(console, "\n") {
		have[strings.TrimSpace(l)] = true
	}
	var missing []string
	for _, m := range markers {
		if !have[m] {
			missing = append(missing, m)
		}
	}
	return missing
}
