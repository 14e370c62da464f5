package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The crash soak (issue 10): many cycles of SIGKILL of `hlfs serve` under
// a flushing writer, with snapshots, gc and clean restarts mixed in, on the
// local store. After every restart every flushed block must read back;
// snapshots taken between cycles must read as the volume did then; fsck
// must pass at the end. `make test` runs a short soak (20 cycles); `make
// soak` runs SOAK_CYCLES (default 1000) and prints the summary line.
//
// Environment: SOAK_CYCLES (default 20 here), SOAK_SEED (default the
// time), SOAK_FSCK_EVERY (fsck the crashed store every N cycles, default
// 50).

const (
	soakVol  = "soak"
	soakSize = 16 << 20
	// soakMaxSnaps bounds the snapshots kept: older ones are removed.
	soakMaxSnaps = 4
)

// soakStats is what a soak did, for its summary line.
type soakStats struct {
	cycles, kills, restarts   int
	flushes, durable          int // acknowledged by the writers
	blockChecks               int // flushed blocks verified, summed over cycles
	snapshots, snapChecks     int
	snapRemoved, gcRuns, fsck int
}

func (st soakStats) String() string {
	return fmt.Sprintf("%d cycles (%d kill -9, %d clean restarts), %d flushes and %d durable writes acknowledged, %d block checks after restarts, %d snapshots (%d content checks, %d removed), %d gc runs, %d fscks",
		st.cycles, st.kills, st.restarts, st.flushes, st.durable, st.blockChecks,
		st.snapshots, st.snapChecks, st.snapRemoved, st.gcRuns, st.fsck)
}

func envInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		tb.Fatalf("%s=%q: want a number", name, v)
	}
	return n
}

// TestCrashSoak is the crash soak; see above.
func TestCrashSoak(t *testing.T) {
	Begin(t, "nbdcopy")
	requireHLFS(t)
	cycles := envInt(t, "SOAK_CYCLES", 20)
	fsckEvery := envInt(t, "SOAK_FSCK_EVERY", 50)
	seed := uint64(envInt(t, "SOAK_SEED", int(time.Now().UnixNano()%1e9)))
	rng := mrand.New(mrand.NewPCG(seed, 1))
	t.Logf("soak: %d cycles, seed %d (SOAK_SEED)", cycles, seed)

	s := newServer(t, Volume{Name: soakVol, Size: soakSize})
	s.Exports = []string{} // every volume and snapshot
	s.AdminSocket = adminSocketPath(t)
	s.ServeArgs = aggressiveGC
	s.Start()
	dir := t.TempDir()
	feed := &modelFeed{path: filepath.Join(dir, "writes.log"), m: newWriteModel()}
	snaps := map[string]string{} // snapshot -> sha256 of its content ("" unknown)
	var order []string           // snapshots, oldest first
	var st soakStats
	t0 := time.Now()
	failed := true
	defer func() {
		verdict := "ok"
		if failed {
			verdict = fmt.Sprintf("FAILED in cycle %d", st.cycles+1)
			keepForInspection(t, s, feed.path, seed)
		}
		line := fmt.Sprintf("soak: %s: %s; seed %d, %v", verdict, st, seed, time.Since(t0).Round(time.Second))
		t.Log(line)
		fmt.Println(line)
	}()

	snapCreate := func(name string) {
		t.Helper()
		s.hlfs("snapshot", "create", soakVol+"@"+name)
		st.snapshots++
		order = append(order, name)
		if len(order) > soakMaxSnaps {
			old := order[0]
			order = order[1:]
			s.hlfs("snapshot", "rm", soakVol+"@"+old)
			delete(snaps, old)
			st.snapRemoved++
		}
	}

	for cycle := 1; cycle <= cycles; cycle++ {
		w := startWriter(t, s.URI(soakVol), feed.path, soakSize, cycle, 0, "--max-run", "16")
		w.waitFlushes(t, 1+rng.IntN(24), 60*time.Second)
		// Mixed in while the writer runs: a snapshot, or an online gc
		// that the kill may cut short.
		var gc *exec.Cmd
		switch r := rng.IntN(10); {
		case r == 0:
			name := fmt.Sprintf("live%d", cycle)
			snapCreate(name)
			snaps[name] = ""
		case r == 1:
			gc = exec.Command(s.bin, "--store", s.StoreURI(), "gc", soakVol)
			if err := gc.Start(); err != nil {
				t.Fatal(err)
			}
			st.gcRuns++
		}
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
		if rng.IntN(10) == 0 {
			s.Stop() // SIGTERM: drains, flushes, exits 0
			st.restarts++
		} else {
			s.Kill()
			st.kills++
		}
		if code := w.wait(t, 30*time.Second); code != 3 {
			t.Fatalf("cycle %d: writer: want exit 3 (server gone), got %d\n%s", cycle, code, w.stderr.String())
		}
		if gc != nil {
			_ = gc.Wait() // fails when the server died under it
		}
		st.flushes += countFlushes(t, feed.path) - w.start
		if fsckEvery > 0 && cycle%fsckEvery == 0 {
			s.Fsck(soakVol) // the crashed store, before recovery touches it
			st.fsck++
		}

		s.Start()
		feed.update(t)
		img := soakImage(t, s, soakVol, dir)
		problems, summary := feed.m.verify(img, 4096)
		for _, p := range problems {
			t.Errorf("cycle %d: %s", cycle, p)
		}
		if len(problems) > 0 {
			t.Fatalf("cycle %d: %s", cycle, summary)
		}
		st.blockChecks += len(feed.m.ok)
		st.durable = feed.m.durable
		// Every acknowledged snapshot survived.
		ls := snapshotLs(t, s, soakVol)
		for _, name := range order {
			if _, ok := findSnapshot(ls, name); !ok {
				t.Fatalf("cycle %d: snapshot %s, acknowledged, is gone after the restart", cycle, name)
			}
		}
		// Between cycles: a snapshot of a known image, and a check of
		// one taken earlier.
		if rng.IntN(5) == 0 {
			name := fmt.Sprintf("s%d", cycle)
			snapCreate(name)
			snaps[name] = sha(img)
		}
		if cycle%10 == 0 {
			for _, name := range order {
				if want := snaps[name]; want != "" {
					if got := sha(soakImage(t, s, soakVol+"@"+name, dir)); got != want {
						t.Fatalf("cycle %d: snapshot %s reads other data than the volume did when it was taken", cycle, name)
					}
					st.snapChecks++
					break
				}
			}
		}
		st.cycles++
		if testing.Verbose() && (cycle%50 == 0 || cycle == cycles) {
			t.Logf("soak: cycle %d: %s; %s", cycle, summary, st)
		}
	}
	s.Stop()
	s.Fsck(soakVol)
	st.fsck++
	if errs := serverErrors(t, s); len(errs) > 0 {
		t.Errorf("the server logged %d errors, the first: %s", len(errs), strings.Join(errs[:min(len(errs), 5)], "\n"))
	}
	failed = t.Failed()
}

// keepForInspection copies a failed soak's store, server log and writer
// log to $TMPDIR/hlfs-soak-failed-SEED (the test's own directories go).
func keepForInspection(t *testing.T, s *Server, writerLog string, seed uint64) {
	if s.Running() {
		s.Kill()
	}
	keep := filepath.Join(os.TempDir(), fmt.Sprintf("hlfs-soak-failed-%d", seed))
	os.RemoveAll(keep)
	if err := os.MkdirAll(keep, 0o755); err != nil {
		t.Logf("keeping the failed soak's store: %v", err)
		return
	}
	for _, src := range []string{s.Dir, s.logPath, writerLog} {
		if out, err := exec.Command("cp", "-a", src, keep).CombinedOutput(); err != nil {
			t.Logf("keeping %s: %v: %s", src, err, out)
		}
	}
	t.Logf("soak: the store, server log and writer log are kept in %s", keep)
}

// soakImage copies export name of s (a volume or VOLUME@SNAPSHOT) out.
func soakImage(t *testing.T, s *Server, name, dir string) []byte {
	t.Helper()
	path := filepath.Join(dir, "image")
	run(t, "nbdcopy", s.URI(name), path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	if len(b) != soakSize {
		t.Fatalf("copied %d bytes of %s, want %d", len(b), name, soakSize)
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// modelFeed applies an nbd_writer.py log to a writeModel as it grows: each
// update reads the lines added since the last one. Call it only while no
// writer appends (a line is complete once its writer exited).
type modelFeed struct {
	path string
	off  int64
	m    *writeModel
}

func (f *modelFeed) update(tb testing.TB) {
	tb.Helper()
	file, err := os.Open(f.path)
	if err != nil {
		tb.Fatal(err)
	}
	defer file.Close()
	if _, err := file.Seek(f.off, 0); err != nil {
		tb.Fatal(err)
	}
	r := bufio.NewReaderSize(file, 1<<20)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if line != "" {
				tb.Fatalf("%s: a torn last line %q", f.path, line)
			}
			break
		}
		f.off += int64(len(line))
		if err := f.m.apply(line); err != nil {
			tb.Fatalf("%s at byte %d: %v", f.path, f.off, err)
		}
	}
	f.m.endProcess() // the writer is gone
}
