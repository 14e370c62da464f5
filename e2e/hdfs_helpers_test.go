package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hlfs/hlfs/hdfsbackend"
	"github.com/hlfs/hlfs/hdfsbackend/hdfstest"
)

// Helpers of the HDFS end-to-end tests (hdfs_e2e_test.go, hdfs_faults_test.go).
// They need the mini-cluster of testdata/hdfs: HLFS_HDFS_URI set (make test
// starts it; by hand: eval "$(scripts/hdfs-up.sh)"), else the tests fail,
// or skip with HLFS_SKIP_HDFS=1.

// hdfsStoreURI returns a fresh HDFS folder for this test's store; its
// contents are removed when the test passed (kept for inspection when not).
func hdfsStoreURI(t *testing.T) string {
	t.Helper()
	requireHLFS(t)
	uri := hdfstest.FolderURI(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("store %s kept for inspection", uri)
			return
		}
		st, err := hdfsbackend.Open(uri, hdfsbackend.Options{})
		if err != nil {
			t.Logf("cleanup of %s: %v", uri, err)
			return
		}
		defer st.Close()
		if err := hdfstest.RemoveAll(st, ""); err != nil {
			t.Logf("cleanup of %s: %v", uri, err)
		}
	})
	return uri
}

// newHDFSServer creates the volumes in a fresh HDFS folder (createArgs are
// extra `hlfs create` arguments) and returns the server, not started.
func newHDFSServer(t *testing.T, createArgs []string, vols ...Volume) *Server {
	t.Helper()
	s := NewServerOn(t, hdfsStoreURI(t), createArgs, vols...)
	// Not the default $TMPDIR/hlfs-PID.sock, which a kill -9 leaves behind.
	s.AdminSocket = adminSocketPath(t)
	return s
}

// onHost returns a second hlfs server on s's store, not started, that runs
// as if on another host (HLFS_HOSTNAME=host) with its own port and log and
// the extra serve arguments serveArgs. It is killed when the test ends.
func (s *Server) onHost(t *testing.T, host string, serveArgs ...string) *Server {
	t.Helper()
	o := s.sibling(t, s.names()...)
	o.Exports = nil
	o.Volumes = s.Volumes
	o.Store = s.StoreURI()
	o.ServeArgs = serveArgs
	o.Env = []string{"HLFS_HOSTNAME=" + host}
	return o
}

// tryServe runs `hlfs serve` as s would (store, Env, ServeArgs, volumes)
// where it is expected to be refused: it returns the output and exit error
// of a refusal, and fails the test if the server came up and listened.
func (s *Server) tryServe(t *testing.T) (string, error) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	args := append([]string{"--store", s.StoreURI(), "serve", "--listen", addr, "--admin-socket", "none"}, s.ServeArgs...)
	args = append(args, s.names()...)
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), s.Env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			return strings.TrimSpace(out.String()), err
		case <-time.After(50 * time.Millisecond):
		}
		if nbdGreets(addr, 100*time.Millisecond) {
			cmd.Process.Kill()
			<-done
			t.Fatalf("hlfs serve %s (%v) was expected to be refused but serves:\n%s", strings.Join(args, " "), s.Env, out.String())
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			t.Fatalf("hlfs serve %s neither served nor exited in 60 s:\n%s", strings.Join(args, " "), out.String())
		}
	}
}

// infoInt runs `hlfs info VOL --json` on s's store and returns the integer
// field named field.
func (s *Server) infoInt(t *testing.T, vol, field string) int64 {
	t.Helper()
	out := s.hlfs("info", vol, "--json")
	i := strings.Index(out, `"`+field+`":`)
	if i < 0 {
		t.Fatalf("hlfs info --json has no %q:\n%s", field, out)
	}
	rest := strings.TrimLeft(out[i+len(field)+3:], " ")
	end := strings.IndexAny(rest, ",\n}")
	n, err := strconv.ParseInt(strings.TrimSpace(rest[:end]), 10, 64)
	if err != nil {
		t.Fatalf("hlfs info --json field %q: %v", field, err)
	}
	return n
}

// writerRun is one nbd_writer.py process appending to a log.
type writerRun struct {
	cmd    *exec.Cmd
	done   chan error
	stderr *bytes.Buffer
	log    string
	start  int // flushes in the log when it started
}

// startWriter starts testdata/nbd_writer.py against uri (QD 8, a flush every
// 16 writes, every 7th write FUA) over span bytes; writes 0 runs until the
// server goes away. extra are more nbd_writer.py arguments (e.g. --max-run
// 16); a repeated flag overrides the default.
func startWriter(t *testing.T, uri, logPath string, span int64, seed, writes int, extra ...string) *writerRun {
	t.Helper()
	py := Python(t)
	script, err := filepath.Abs("testdata/nbd_writer.py")
	if err != nil {
		t.Fatal(err)
	}
	w := &writerRun{stderr: new(bytes.Buffer), done: make(chan error, 1), log: logPath,
		start: countFlushes(t, logPath)}
	w.cmd = exec.Command(py, script, "--uri", uri, "--log", logPath,
		"--span", strconv.FormatInt(span, 10), "--block", "4096",
		"--qd", "8", "--flush-every", "16", "--fua-every", "7",
		"--seed", strconv.Itoa(seed), "--writes", strconv.Itoa(writes))
	w.cmd.Args = append(w.cmd.Args, extra...)
	w.cmd.Stderr = w.stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.done <- w.cmd.Wait() }()
	t.Cleanup(func() {
		if w.cmd.ProcessState == nil {
			w.cmd.Process.Kill()
		}
	})
	return w
}

// waitFlushes waits until this writer had n flushes acknowledged.
func (w *writerRun) waitFlushes(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for countFlushes(t, w.log)-w.start < n {
		select {
		case err := <-w.done:
			w.done <- err
			t.Fatalf("writer exited (%v) before %d flushes:\n%s", err, n, w.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("writer made fewer than %d flushes in %v:\n%s", n, timeout, w.stderr.String())
		}
	}
}

// wait waits for the writer to exit and returns its exit code.
func (w *writerRun) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case err := <-w.done:
		w.done <- err
		if err == nil {
			return 0
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		t.Fatalf("writer: %v", err)
	case <-time.After(timeout):
		w.cmd.Process.Kill()
		t.Fatalf("writer still running after %v:\n%s", timeout, w.stderr.String())
	}
	return -1
}

// killUnderLoad runs a writer until it had minFlushes flushes, kills the
// server with SIGKILL and checks that the writer saw the server go (exit 3).
func killUnderLoad(t *testing.T, s *Server, vol, logPath string, span int64, seed, minFlushes int) {
	t.Helper()
	w := startWriter(t, s.URI(vol), logPath, span, seed, 0)
	w.waitFlushes(t, minFlushes, 60*time.Second)
	time.Sleep(time.Duration(seed*97) * time.Millisecond) // land the kill at different points
	s.Kill()
	if code := w.wait(t, 30*time.Second); code != 3 {
		t.Fatalf("writer: want exit 3 (server gone), got %d\n%s", code, w.stderr.String())
	}
	t.Logf("killed the server under load: %s", strings.TrimSpace(w.stderr.String()))
}

// verifyWrites copies the volume out and checks it against the writer log:
// every flushed or FUA write reads back (or a later write to its block) and
// nothing else changed. It returns the image's SHA-256.
func verifyWrites(t *testing.T, s *Server, vol, logPath string, size int64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "image")
	run(t, "nbdcopy", s.URI(vol), img)
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(img)
	if int64(len(data)) != size {
		t.Fatalf("copied %d bytes, want %d", len(data), size)
	}
	problems, summary := replayWriterLog(t, logPath).verify(data, 4096)
	t.Logf("%s: %s", s.hostName(), summary)
	for _, p := range problems {
		t.Error(p)
	}
	if t.Failed() {
		t.FailNow()
	}
	return sha(data)
}

// hostName is the host a server runs as, for messages.
func (s *Server) hostName() string {
	for _, e := range s.Env {
		if h, ok := strings.CutPrefix(e, "HLFS_HOSTNAME="); ok {
			return "host " + h
		}
	}
	return "this host"
}

// flushProgress samples a writer's flush count every 100 ms and records the
// longest time without a new flush.
type flushProgress struct {
	stop    chan struct{}
	done    chan struct{}
	maxGap  time.Duration
	gapEnd  time.Time
	flushes int
}

func watchFlushes(t *testing.T, logPath string) *flushProgress {
	p := &flushProgress{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		count := func() int {
			b, _ := os.ReadFile(logPath)
			return bytes.Count(b, []byte("\nF "))
		}
		last, lastAt := count(), time.Now()
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			n := count()
			now := time.Now()
			if n != last {
				if g := now.Sub(lastAt); g > p.maxGap {
					p.maxGap, p.gapEnd = g, now
				}
				last, lastAt = n, now
			}
			p.flushes = n
		}
	}()
	return p
}

func (p *flushProgress) finish() {
	close(p.stop)
	<-p.done
}

// since describes the longest stall relative to t0 (the fault).
func (p *flushProgress) since(t0 time.Time) string {
	if p.maxGap == 0 {
		return "no flush acknowledged while watched"
	}
	start := p.gapEnd.Add(-p.maxGap)
	return fmt.Sprintf("longest time without a flush acknowledged: %v, from %+.1fs to %+.1fs after the fault",
		p.maxGap.Round(10*time.Millisecond), start.Sub(t0).Seconds(), p.gapEnd.Sub(t0).Seconds())
}
