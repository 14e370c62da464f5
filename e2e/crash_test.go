package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writeModel replays an nbd_writer.py log. Per block offset it keeps the
// set of values the block may hold after a crash: the last durable value
// (flushed or FUA-acknowledged; all zeros before any) plus every value
// written after it whose durability is unknown.
type writeModel struct {
	ok      map[int64]map[string]bool // offset -> acceptable sha256s
	pending map[int64][]string        // this writer's writes since its last F
	durable int                       // durable writes seen (F batches + U)
	writes  int
}

var zeroBlockSHA = func() string {
	s := sha256.Sum256(make([]byte, 4096))
	return hex.EncodeToString(s[:])
}()

func replayWriterLog(tb testing.TB, path string) *writeModel {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	m := newWriteModel()
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		if err := m.apply(sc.Text()); err != nil {
			tb.Fatalf("%s:%d: %v", path, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	m.endProcess()
	return m
}

func newWriteModel() *writeModel {
	return &writeModel{ok: map[int64]map[string]bool{}, pending: map[int64][]string{}}
}

// endProcess: the writer died; its unflushed writes may or may not have
// reached the store.
func (m *writeModel) endProcess() {
	for off, shas := range m.pending {
		set := m.ok[off]
		if set == nil {
			set = map[string]bool{zeroBlockSHA: true}
			m.ok[off] = set
		}
		for _, s := range shas {
			set[s] = true
		}
	}
	m.pending = map[int64][]string{}
}

// apply replays one line of an nbd_writer.py log.
func (m *writeModel) apply(line string) error {
	fs := strings.Fields(line)
	if len(fs) == 0 {
		return nil
	}
	switch fs[0] {
	case "B":
		m.endProcess()
	case "W", "U":
		if len(fs) != 3 {
			return fmt.Errorf("bad record %q", line)
		}
		off, err := strconv.ParseInt(fs[1], 10, 64)
		if err != nil {
			return err
		}
		if fs[0] == "W" {
			m.pending[off] = append(m.pending[off], fs[2])
			m.writes++
		} else {
			// A FUA write was acknowledged; no other write to off
			// was in flight, so later ones come after it in the log.
			m.ok[off] = map[string]bool{fs[2]: true}
			delete(m.pending, off)
			m.durable++
		}
	case "F":
		for off, shas := range m.pending {
			m.ok[off] = map[string]bool{shas[len(shas)-1]: true}
			m.durable += len(shas)
		}
		m.pending = map[int64][]string{}
	default:
		// A torn last line from a killed writer is not expected (the
		// server is killed, not the writer), so anything else is a bug.
		return fmt.Errorf("unknown record %q", line)
	}
	return nil
}

// verify compares an image of the volume against the model: every block the
// writer touched holds an acceptable value, every other block reads as
// zeros. It returns the problems found (at most 10 spelled out) and a summary.
func (m *writeModel) verify(img []byte, block int64) (problems []string, summary string) {
	bad, several := 0, 0
	for off := int64(0); off+block <= int64(len(img)); off += block {
		sum := sha256.Sum256(img[off : off+block])
		got := hex.EncodeToString(sum[:])
		set, touched := m.ok[off]
		var p string
		switch {
		case !touched && got != zeroBlockSHA:
			p = fmt.Sprintf("block at %d was never written but reads %.16s", off, got)
		case touched && !set[got]:
			p = fmt.Sprintf("block at %d reads %.16s, not one of its %d acceptable values (lost a flushed write?)", off, got, len(set))
		case touched && len(set) > 1:
			several++
		}
		if p != "" {
			bad++
			if bad <= 10 {
				problems = append(problems, p)
			}
		}
	}
	if bad > 10 {
		problems = append(problems, fmt.Sprintf("... %d bad blocks in all", bad))
	}
	summary = fmt.Sprintf("checked %d blocks: %d touched by %d writes (%d durable), %d with several acceptable values, %d bad",
		len(img)/int(block), len(m.ok), m.writes, m.durable, several, bad)
	return problems, summary
}

// TestKill9FlushedWritesSurvive runs the python3-libnbd writer (QD 8, flush
// every 16 writes, every 7th write FUA) against the server, kills the server
// with SIGKILL mid-load, restarts it and checks that every flushed or FUA
// write reads back (or a later write to the same block), three times over on
// the same volume.
func TestKill9FlushedWritesSurvive(t *testing.T) {
	Begin(t, "nbdcopy")
	py := Python(t)
	const (
		volSize = 128 << 20
		span    = 64 << 20
		block   = 4096
	)
	s := NewServer(t, Volume{Name: "crashvol", Size: volSize})
	dir := t.TempDir()
	logPath := filepath.Join(dir, "writes.log")
	writer, err := filepath.Abs("testdata/nbd_writer.py")
	if err != nil {
		t.Fatal(err)
	}
	for cycle := 1; cycle <= 3; cycle++ {
		before := countFlushes(t, logPath)
		cmd := exec.Command(py, writer, "--uri", s.URI("crashvol"), "--log", logPath,
			"--span", strconv.Itoa(span), "--block", strconv.Itoa(block),
			"--qd", "8", "--flush-every", "16", "--fua-every", "7",
			"--seed", strconv.Itoa(cycle))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()

		// Kill mid-load: once this writer has had some flushes acked, after
		// a cycle-dependent delay so the kill lands at different points.
		deadline := time.Now().Add(30 * time.Second)
		minFlushes := before + 20*cycle
		for countFlushes(t, logPath) < minFlushes {
			select {
			case err := <-done:
				t.Fatalf("writer exited before the kill: %v\n%s", err, stderr.String())
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("writer made fewer than %d flushes in 30 s\n%s", minFlushes-before, stderr.String())
			}
		}
		time.Sleep(time.Duration(cycle*137) * time.Millisecond)
		s.Kill()
		select {
		case err := <-done:
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
				t.Fatalf("writer: want exit 3 (server gone), got %v\n%s", err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("writer still running 30 s after the server was killed")
		}
		t.Logf("cycle %d: %s", cycle, strings.TrimSpace(stderr.String()))

		s.Start()
		img := filepath.Join(dir, fmt.Sprintf("after-kill-%d.img", cycle))
		run(t, "nbdcopy", s.URI("crashvol"), img)
		data, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != volSize {
			t.Fatalf("copied %d bytes, want %d", len(data), volSize)
		}
		problems, summary := replayWriterLog(t, logPath).verify(data, block)
		t.Logf("cycle %d: %s", cycle, summary)
		for _, p := range problems {
			t.Error(p)
		}
		os.Remove(img)
		if t.Failed() {
			return
		}
	}
	s.Stop()
	s.Fsck("crashvol")
}

func countFlushes(tb testing.TB, path string) int {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for _, l := range bytes.Split(b, []byte("\n")) {
		if len(l) > 0 && l[0] == 'F' {
			n++
		}
	}
	return n
}
