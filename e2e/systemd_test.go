package e2e

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unitPath is the systemd unit of the repository, from e2e/.
const unitPath = "../dist/systemd/hlfs.service"

// unitForBinary returns the unit with its ExecStart on bin and its runtime
// directory /run/hlfs at runDir.
func unitForBinary(t *testing.T, bin, runDir string) string {
	t.Helper()
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	if !strings.Contains(unit, "ExecStart=/usr/local/bin/hlfs ") {
		t.Fatalf("%s: no ExecStart=/usr/local/bin/hlfs", unitPath)
	}
	unit = strings.ReplaceAll(unit, "/usr/local/bin/hlfs", bin)
	return strings.ReplaceAll(unit, "/run/hlfs/", runDir+"/")
}

// TestSystemdUnitVerifies runs systemd-analyze verify on the unit, with
// ExecStart on the hlfs binary under test (the installed path
// /usr/local/bin/hlfs need not exist here).
func TestSystemdUnitVerifies(t *testing.T) {
	Begin(t, "systemd-analyze")
	dir := t.TempDir()
	unit := filepath.Join(dir, "hlfs.service")
	if err := os.WriteFile(unit, []byte(unitForBinary(t, hlfsBinary(t), "/run/hlfs")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestServeUnderSystemdNotify runs the ExecStart of the unit with its
// environment (Environment= defaults, then dist/systemd/hlfs.env) as
// systemd would, with NOTIFY_SOCKET set: serve must send READY=1 only once
// it accepts NBD connections, STOPPING=1 on SIGTERM, and exit 0.
func TestServeUnderSystemdNotify(t *testing.T) {
	Begin(t)
	if backendFromEnv() != BackendHLFS {
		t.Skip("the unit runs hlfs serve")
	}
	s := newServer(t, Volume{Name: "vm1", Size: 4 << 20})
	runDir := shortTempDir(t)
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(runDir, "notify"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()

	unit := unitForBinary(t, s.bin, runDir)
	env := unitEnv(t, unit)
	if env["HLFS_STORE"] == "" || env["HLFS_LISTEN"] == "" || env["HLFS_METRICS"] == "" {
		t.Fatalf("the unit and hlfs.env do not set HLFS_STORE, HLFS_LISTEN and HLFS_METRICS: %v", env)
	}
	metricsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	env["HLFS_STORE"], env["HLFS_LISTEN"], env["HLFS_METRICS"] = s.StoreURI(), s.Addr, metricsAddr
	args := execStart(t, unit, env)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify.LocalAddr().String())
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("serve log:\n%s", b)
		}
	}()

	if got := readNotify(t, notify); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	// READY means serving: every listener takes a client now, no retry.
	for _, a := range [][2]string{{"tcp", s.Addr}, {"unix", filepath.Join(runDir, "nbd.sock")}, {"tcp", metricsAddr}} {
		c, err := net.Dial(a[0], a[1])
		if err != nil {
			t.Fatalf("READY=1 sent, but %s %s: %v", a[0], a[1], err)
		}
		c.Close()
	}
	info := run(t, "nbdinfo", "--size", "nbd+unix:///vm1?socket="+filepath.Join(runDir, "nbd.sock"))
	if strings.TrimSpace(info) != strconv.Itoa(4<<20) {
		t.Fatalf("nbdinfo --size: %q", info)
	}
	if _, err := os.Stat(filepath.Join(runDir, "admin.sock")); err != nil {
		t.Fatalf("admin socket: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := readNotify(t, notify); got != "STOPPING=1" {
		t.Fatalf("notification after SIGTERM %q, want STOPPING=1", got)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve still running 60 s after SIGTERM")
	}
}

// shortTempDir is a temporary directory with a path short enough for Unix
// socket names (108 bytes).
func shortTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "hlfs-sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// readNotify returns the next datagram sent to the notify socket.
func readNotify(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return strings.TrimSpace(string(buf[:n]))
}

// unitEnv returns the environment the unit gives serve: its Environment=
// lines, then dist/systemd/hlfs.env (its EnvironmentFile, as installed).
func unitEnv(t *testing.T, unit string) map[string]string {
	t.Helper()
	env := make(map[string]string)
	for line := range strings.Lines(unit) {
		if kv, ok := strings.CutPrefix(strings.TrimSpace(line), "Environment="); ok {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	f, err := os.Open("../dist/systemd/hlfs.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if _, known := env[k]; !ok || !known {
			t.Fatalf("hlfs.env: %q sets nothing the unit uses", line)
		}
		env[k] = v
	}
	return env
}

var unitVar = regexp.MustCompile(`^\$\{?([A-Z_]+)\}?$`)

// execStart returns the unit's ExecStart as systemd runs it with env:
// ${VAR} is one argument (empty if VAR is), $VAR splits at white space.
func execStart(t *testing.T, unit string, env map[string]string) []string {
	t.Helper()
	for line := range strings.Lines(unit) {
		cmdline, ok := strings.CutPrefix(strings.TrimSpace(line), "ExecStart=")
		if !ok {
			continue
		}
		var args []string
		for _, w := range strings.Fields(cmdline) {
			m := unitVar.FindStringSubmatch(w)
			switch {
			case m == nil:
				args = append(args, w)
			case strings.HasPrefix(w, "${"):
				args = append(args, env[m[1]])
			default:
				args = append(args, strings.Fields(env[m[1]])...)
			}
		}
		return args
	}
	t.Fatal("no ExecStart in the unit")
	return nil
}
