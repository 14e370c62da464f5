package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlfs/hlfs/hdfsbackend"
	"github.com/hlfs/hlfs/internal/objstore"
)

// The cleaner end to end: `hlfs serve` cleans each volume in the
// background (copies the live data of old segments forward, then deletes
// them under STORE/VOL/seg/), and `hlfs gc` cleans on demand. These tests
// kill the server with SIGKILL while the cleaner copies and deletes under a
// flushing load, and check that TRIM gives space back.

// aggressiveGC are `hlfs serve` flags that make the cleaner run as often as
// it can: a check every 50 ms, a pass once 5% of the cleanable bytes are
// garbage, no bound on its copy rate.
var aggressiveGC = []string{"--gc-interval", "50ms", "--gc-trigger", "0.05", "--gc-rate", "0"}

// TestGCKill9WhileCleaning overwrites a 64 MiB volume many times over with
// the python-libnbd writer (QD 8, runs of 1-16 blocks so later writes cover
// parts of earlier records, a flush every 16 writes, every 7th write FUA)
// while an aggressive cleaner copies and deletes segments, and kills the
// server with SIGKILL at a random moment (0-600 ms) after the cleaner
// deleted its third segment in that cycle, six times. After each kill the
// crashed store passes fsck, and after each restart every flushed block
// reads back; at the end the store holds much less than was written.
func TestGCKill9WhileCleaning(t *testing.T) {
	Begin(t, "nbdcopy")
	requireHLFS(t)
	const (
		vol  = "gcvol"
		size = 64 << 20
	)
	s := newServer(t, Volume{Name: vol, Size: size})
	s.AdminSocket = adminSocketPath(t)
	s.ServeArgs = aggressiveGC
	s.Start()
	st, err := objstore.NewDirStore(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	kill9WhileCleaning(t, s, st, vol, size, 6)
}

// TestHDFSGCKill9WhileCleaning is TestGCKill9WhileCleaning on HDFS, where
// every FLUSH and FUA write closes a segment, so the log is many small
// segment files. Two cycles, a flush every 64 writes and no FUA: the
// mini-cluster takes flushing writes several times slower than a local disk.
func TestHDFSGCKill9WhileCleaning(t *testing.T) {
	Begin(t, "nbdcopy")
	const (
		vol  = "gcvol"
		size = 64 << 20
	)
	s := newHDFSServer(t, nil, Volume{Name: vol, Size: size})
	s.ServeArgs = aggressiveGC
	s.Start()
	st, err := hdfsbackend.Open(s.StoreURI(), hdfsbackend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kill9WhileCleaning(t, s, st, vol, size, 2, "--flush-every", "64", "--fua-every", "0")
}

// kill9WhileCleaning runs the kill -9 cycles of TestGCKill9WhileCleaning on
// a started server s; st is a second view of s's store, for watching the
// volume's segments; writerArgs are more nbd_writer.py arguments.
func kill9WhileCleaning(t *testing.T, s *Server, st objstore.Store, vol string, size int64, cycles int, writerArgs ...string) {
	logPath := filepath.Join(t.TempDir(), "writes.log")
	segs := watchSegments(t, st, vol)
	defer segs.finish()
	seed := uint64(time.Now().UnixNano())
	rng := mrand.New(mrand.NewPCG(seed, 0))
	t.Logf("kill delays from seed %d", seed)
	for cycle := 1; cycle <= cycles; cycle++ {
		t0 := time.Now()
		segs.poll() // what recovery removed does not count
		before := segs.deletedCount()
		w := startWriter(t, s.URI(vol), logPath, size, cycle, 0, append([]string{"--max-run", "16"}, writerArgs...)...)
		// The cleaner deletes a segment only after copying what it held
		// forward and two checkpoints: once it deleted three in this
		// cycle, it is in full swing (copying, checkpointing, deleting).
		segs.waitDeleted(t, before+3, w, 120*time.Second)
		inSwing := time.Since(t0)
		delay := time.Duration(rng.IntN(600)) * time.Millisecond
		time.Sleep(delay)
		s.Kill()
		if code := w.wait(t, 30*time.Second); code != 3 {
			t.Fatalf("cycle %d: writer: want exit 3 (server gone), got %d\n%s", cycle, code, w.stderr.String())
		}
		flushes := countFlushes(t, logPath) - w.start
		deleted := segs.deletedCount() - before
		t.Logf("cycle %d: third segment deleted %v into the cycle, killed %v after that; %d segments deleted in the cycle; %s",
			cycle, inSwing.Round(time.Millisecond), delay, deleted, strings.TrimSpace(w.stderr.String()))
		if flushes == 0 {
			t.Fatalf("cycle %d: no flush acknowledged before the kill: nothing to verify", cycle)
		}
		// The crashed store, before recovery touched it: a torn tail ends
		// the log, anything else is damage.
		s.Fsck(vol)
		s.Start()
		verifyWrites(t, s, vol, logPath, size)
	}
	s.Stop()
	s.Fsck(vol)

	deleted := segs.deletedCount()
	segs.finish()
	segBytes, segCount := objectBytes(t, st, path.Join(vol, "seg"))
	written := int64(replayWriterLog(t, logPath).durable) * 4096
	t.Logf("the writers had %d MiB flushed; the cleaner deleted %d segments seen while serving; %d segments of %d MiB left",
		written>>20, deleted, segCount, segBytes>>20)
	// Without cleaning the segments would hold at least every flushed byte.
	// The cleaner leaves the log after the older of the two checkpoints
	// kept alone (up to two checkpoint intervals, 128 MiB each for this
	// volume) and cleans only once 64 MiB are garbage, so that holds only
	// once much more than that was flushed.
	if written < 512<<20 {
		t.Logf("only %d MiB flushed: not checking that the segments hold less", written>>20)
	} else if segBytes >= written {
		t.Errorf("segments hold %d MiB after %d MiB flushed into a %d MiB volume: the cleaner reclaimed nothing",
			segBytes>>20, written>>20, size>>20)
	}
	// hlfs du agrees with the store and counts at most the volume as live.
	du := diskUsage(t, s, vol)
	if du["segment_bytes"] != segBytes || du["live_bytes"] > size || du["live_bytes"] < size/2 {
		t.Errorf("hlfs du: segment_bytes %d (the store's: %d), live_bytes %d (the writers wrote most of the %d bytes)",
			du["segment_bytes"], segBytes, du["live_bytes"], size)
	}
	t.Logf("hlfs du: live %d MiB, stored %d MiB, garbage %d MiB", du["live_bytes"]>>20, du["stored_bytes"]>>20, du["garbage_bytes"]>>20)
	if errs := serverErrors(t, s); len(errs) > 0 {
		t.Errorf("the server logged %d errors, the first: %s", len(errs), strings.Join(errs[:min(len(errs), 5)], "\n"))
	}
}

// TestGCTrimReclaims writes 32 MiB of random data into a 64 MiB volume,
// trims the whole volume and runs `hlfs gc`: the segments must shrink to
// almost nothing. Twice: with the server stopped (gc opens the volume
// itself), then while it serves (gc goes through the admin socket).
func TestGCTrimReclaims(t *testing.T) {
	Begin(t, "nbdcopy", "qemu-io")
	requireHLFS(t)
	const (
		vol     = "trimvol"
		size    = 64 << 20
		payload = 32 << 20
		maxLeft = 2 << 20
	)
	s := newServer(t, Volume{Name: vol, Size: size})
	s.AdminSocket = adminSocketPath(t)
	s.Start()
	st, err := objstore.NewDirStore(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "payload")
	for _, mode := range []string{"offline", "online"} {
		data := make([]byte, payload)
		rand.Read(data)
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, "nbdcopy", "--flush", src, s.URI(vol))
		segFull, _ := objectBytes(t, st, path.Join(vol, "seg"))
		if segFull < payload {
			t.Fatalf("%s: segments hold %d bytes after %d bytes were written and flushed", mode, segFull, payload)
		}
		qemuIO(t, s.URI(vol), "discard 0 64M", "flush", "read -P 0 0 64M")
		segTrimmed, _ := objectBytes(t, st, path.Join(vol, "seg"))
		var out string
		if mode == "offline" {
			s.Stop()
			out = s.hlfs("gc", vol)
			s.Start()
		} else {
			out = s.hlfs("gc", vol)
		}
		segAfter, n := objectBytes(t, st, path.Join(vol, "seg"))
		t.Logf("%s: segments: %d KiB after writing %d MiB, %d KiB after the trim, %d KiB in %d segments after hlfs gc: %s",
			mode, segFull>>10, payload>>20, segTrimmed>>10, segAfter>>10, n, strings.TrimSpace(out))
		if segAfter > maxLeft {
			t.Errorf("%s: hlfs gc left %d KiB of segments after the whole volume was trimmed, want at most %d KiB",
				mode, segAfter>>10, maxLeft>>10)
		}
		qemuIO(t, s.URI(vol), "read -P 0 0 64M")
	}
	s.Stop()
	s.Fsck(vol)
	// What hlfs du says of a trimmed, cleaned volume.
	du := diskUsage(t, s, vol)
	segBytes, _ := objectBytes(t, st, path.Join(vol, "seg"))
	if du["live_bytes"] != 0 || du["segment_bytes"] != segBytes || du["garbage_bytes"] > maxLeft {
		t.Errorf("hlfs du after trim and gc: live %d, segments %d, garbage %d bytes; want live 0, segments %d (the store's), garbage at most %d",
			du["live_bytes"], du["segment_bytes"], du["garbage_bytes"], segBytes, maxLeft)
	}
}

// diskUsage runs `hlfs du VOL --json` and returns its byte counts; it fails
// the test unless live_bytes, segment_bytes, stored_bytes and garbage_bytes
// are there.
func diskUsage(t *testing.T, s *Server, vol string) map[string]int64 {
	t.Helper()
	out := s.hlfs("du", vol, "--json")
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("hlfs du --json: %v\n%s", err, out)
	}
	du := map[string]int64{}
	for _, k := range []string{"live_bytes", "segment_bytes", "stored_bytes", "garbage_bytes"} {
		var n int64
		if err := json.Unmarshal(raw[k], &n); err != nil {
			t.Fatalf("hlfs du --json: %s: %v\n%s", k, err, out)
		}
		du[k] = n
	}
	return du
}

// segWatch lists a volume's seg/ folder every 20 ms and remembers every
// segment object it saw and which of those went away.
type segWatch struct {
	st   objstore.Store
	dir  string
	stop chan struct{}
	done chan struct{}

	pollMu sync.Mutex // one poll at a time: a list applied after a newer one would resurrect names
	mu     struct {
		sync.Mutex
		seen map[string]bool
		gone int
		err  error
	}
}

func watchSegments(t *testing.T, st objstore.Store, vol string) *segWatch {
	w := &segWatch{st: st, dir: path.Join(vol, "seg"), stop: make(chan struct{}), done: make(chan struct{})}
	w.mu.seen = map[string]bool{}
	w.poll()
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			w.poll()
		}
	}()
	t.Cleanup(w.finish)
	return w
}

func (w *segWatch) poll() {
	w.pollMu.Lock()
	defer w.pollMu.Unlock()
	names, err := w.st.List(w.dir)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.mu.err = err
		return
	}
	now := make(map[string]bool, len(names))
	for _, n := range names {
		now[n] = true
		w.mu.seen[n] = true
	}
	for n := range w.mu.seen {
		if !now[n] {
			w.mu.gone++
			delete(w.mu.seen, n)
		}
	}
}

// deletedCount is the number of segment objects seen to go away.
func (w *segWatch) deletedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.gone
}

// waitDeleted waits until n segment objects were seen to go away, failing
// the test if the writer exits or timeout passes first.
func (w *segWatch) waitDeleted(t *testing.T, n int, wr *writerRun, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for w.deletedCount() < n {
		select {
		case err := <-wr.done:
			wr.done <- err
			t.Fatalf("writer exited (%v) before the cleaner deleted %d segments:\n%s", err, n, wr.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			w.mu.Lock()
			err := w.mu.err
			w.mu.Unlock()
			t.Fatalf("the cleaner deleted fewer than %d segments in %v of overwrites (last list error: %v); writer: %s",
				n, timeout, err, wr.stderr.String())
		}
	}
}

func (w *segWatch) finish() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// objectBytes returns the total size and the number of the objects in the
// store folder dir.
func objectBytes(t *testing.T, st objstore.Store, dir string) (int64, int) {
	t.Helper()
	names, err := st.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	n := 0
	for _, name := range names {
		r, err := st.Open(path.Join(dir, name))
		if errors.Is(err, objstore.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		total += r.Size()
		n++
		r.Close()
	}
	return total, n
}

// serverErrors returns the ERROR lines of the server's log.
func serverErrors(t *testing.T, s *Server) []string {
	t.Helper()
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "level=ERROR") {
			errs = append(errs, sc.Text())
		}
	}
	return errs
}
