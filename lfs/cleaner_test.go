package lfs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// checkBooks recounts the books from every map and compares, when the
// volume claims they are exact.
func checkBooks(t *testing.T, v *Volume) {
	t.Helper()
	require.NoError(t, v.Check())
}

func storedSegmentBytes(t *testing.T, st objstore.Store, vol string) int64 {
	t.Helper()
	names, err := st.List(segDir(vol))
	require.NoError(t, err)
	var n int64
	for _, name := range names {
		r, err := st.Open(segDir(vol) + "/" + name)
		require.NoError(t, err)
		n += r.Size()
		require.NoError(t, r.Close())
	}
	return n
}

func TestGCReclaimsOverwrittenAndTrimmedSpace(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	v := newTestVolume(t, st, "g", 8<<20)
	rng := rand.New(rand.NewSource(1))
	model := make([]byte, 8<<20)
	buf := make([]byte, 64<<10)
	for round := 0; round < 6; round++ {
		for off := int64(0); off < int64(len(model)); off += int64(len(buf)) {
			rng.Read(buf)
			require.NoError(t, v.WriteAt(buf, off, false))
			copy(model[off:], buf)
		}
	}
	checkBooks(t, v)
	before := storedSegmentBytes(t, st, "g")
	stats, err := v.GC(GCOptions{})
	require.NoError(t, err)
	after := storedSegmentBytes(t, st, "g")
	t.Logf("before %d after %d stats %+v", before, after, stats)
	require.Greater(t, stats.SegmentsDeleted, 0)
	require.Less(t, after, int64(float64(len(model))*1.3), "stored %d for %d live", after, len(model))
	checkBooks(t, v)
	checkAgainstModel(t, v, model, rng)
	require.NoError(t, v.Close())
	v = openChecked(t, st, "g", Options{})
	checkAgainstModel(t, v, model, rng)
	checkBooks(t, v)
	// Nothing left to clean: a second run changes nothing.
	segs, err := st.List(segDir("g"))
	require.NoError(t, err)
	again, err := v.GC(GCOptions{})
	require.NoError(t, err)
	require.Equal(t, GCStats{}, again)
	segsAgain, err := st.List(segDir("g"))
	require.NoError(t, err)
	require.Equal(t, segs, segsAgain)

	// Everything trimmed: gc leaves almost nothing.
	require.NoError(t, v.Zero(0, int64(len(model)), true, false))
	_, err = v.GC(GCOptions{})
	require.NoError(t, err)
	after = storedSegmentBytes(t, st, "g")
	require.Less(t, after, int64(2<<20), "an all-trimmed volume keeps %d bytes of segments", after)
	got := make([]byte, len(model))
	require.NoError(t, v.ReadAt(got, 0))
	require.True(t, bytes.Equal(got, make([]byte, len(model))))
	require.NoError(t, v.Close())
}

// gcCrashSetup builds a volume whose log spans many segments, with garbage,
// a trimmed range and two snapshots sharing data with the live volume, all
// durable. It returns the content of the volume and of each snapshot.
// 2 MiB, not 4: the gc takes as many store operations (100 and 119 against
// 102 and 124) and cleans as many segments, and every crash point then
// costs half the bytes to clone, read back and fsck (lfs under -race: the
// two modes took 184 s, now 124).
func gcCrashSetup(t *testing.T, st objstore.Store) (live []byte, snaps map[string][]byte) {
	const size = 2 << 20
	require.NoError(t, Create(st, "g", Config{Size: size, BlockSize: 4096, SegmentSize: 1 << 20}))
	v := openChecked(t, st, "g", Options{CheckpointInterval: -1})
	rng := rand.New(rand.NewSource(7))
	live, snaps = make([]byte, size), map[string][]byte{}
	write := func(off int64, n int) {
		p := make([]byte, n)
		rng.Read(p)
		require.NoError(t, v.WriteAt(p, off, false))
		copy(live[off:], p)
	}
	for round := 0; round < 2; round++ { // the first round is all garbage
		for off := int64(0); off < size; off += 64 << 10 {
			write(off, 64<<10)
		}
	}
	require.NoError(t, v.CreateSnapshot("s1"))
	snaps["s1"] = append([]byte(nil), live...)
	for i := 0; i < 300; i++ {
		write(rng.Int63n(size/4096)*4096, 4096)
	}
	require.NoError(t, v.CreateSnapshot("s2"))
	snaps["s2"] = append([]byte(nil), live...)
	for off := int64(0); off < size/2; off += 64 << 10 {
		write(off, 64<<10)
	}
	require.NoError(t, v.Zero(size/2, size/4, true, false))
	clear(live[size/2 : 3*size/4])
	require.NoError(t, v.Close())
	return live, snaps
}

func checkVolumeContent(t *testing.T, v *Volume, live []byte, snaps map[string][]byte, what string) {
	t.Helper()
	got := make([]byte, len(live))
	require.NoError(t, v.ReadAt(got, 0), what)
	require.True(t, bytes.Equal(got, live), "%s: the live volume differs", what)
	for name, want := range snaps {
		view, err := v.SnapshotView(name)
		require.NoError(t, err, what)
		require.NoError(t, view.ReadAt(got, 0), what)
		require.True(t, bytes.Equal(got, want), "%s: snapshot %s differs", what, name)
	}
}

// TestCrashDuringGCAtEveryStoreOperation lets the store die at every
// operation of a gc run (and of a write and flush after it): the reopened
// volume and its snapshots read exactly as before, fsck is clean and the
// books match a recount.
func TestCrashDuringGCAtEveryStoreOperation(t *testing.T) {
	simulateOwnDeath(t) // before the subtests start; they only read it
	for _, noSync := range []bool{false, true} {
		t.Run(fmt.Sprintf("noSync=%v", noSync), func(t *testing.T) {
			t.Parallel() // each mode crashes its own copies; -race time on two cores
			// The setup is durable and the same for every k: built once, each
			// run crashes a copy of it.
			base := objstore.NewMemStore(noSync, 0)
			baseLive, snaps := gcCrashSetup(t, base)
			for k := 1; ; k++ {
				st := base.Clone(int64(k))
				live := bytes.Clone(baseLive)
				v, err := Open(st.Session(), "g", Options{CheckpointInterval: -1})
				require.NoError(t, err)
				dead := dieFrom(st, k)
				stats, gcErr := v.GC(GCOptions{MaxUtilization: 0.99, Defrag: DefragAll})
				tail := bytes.Repeat([]byte{0xaa}, 8192)
				flushed := false
				if gcErr == nil && v.WriteAt(tail, 0, false) == nil && v.Flush() == nil {
					flushed = true
				}
				v.Abandon()
				st.SetInjector(nil)
				st.Crash()
				if flushed {
					copy(live, tail)
				}
				what := fmt.Sprintf("noSync=%v k=%d", noSync, k)
				v, err = Open(st, "g", Options{})
				require.NoError(t, err, what)
				requireCheck(t, v, what)
				if !flushed {
					// The write after gc may or may not have survived.
					got := make([]byte, len(tail))
					require.NoError(t, v.ReadAt(got, 0))
					if bytes.Equal(got, tail) {
						copy(live, tail)
					}
				}
				checkVolumeContent(t, v, live, snaps, what)
				checkBooks(t, v)
				// A second gc after the crash finishes the job.
				_, err = v.GC(GCOptions{})
				require.NoError(t, err, what)
				checkVolumeContent(t, v, live, snaps, what+" after a second gc")
				checkBooks(t, v)
				require.NoError(t, v.Close())
				requireFsckAfterCrash(t, st, "g", what)
				if !dead.Load() {
					require.Greater(t, stats.SegmentsDeleted, 0, "the gc run should delete segments")
					require.Greater(t, stats.DefragWindows, 0, "the gc run should defragment the randomly written windows")
					require.Greater(t, k, 50, "gc should take many store operations")
					t.Logf("noSync=%v: crashed at each of %d store operations (gc: %+v)", noSync, k-1, stats)
					break
				}
			}
		})
	}
}

// TestBackgroundCleanerUnderLoad runs the background cleaner flat out while
// a writer overwrites a model, readers read, and snapshots come and go;
// then the volume, its snapshots and its books check out, before and after
// a restart, and the store stays bounded.
func TestBackgroundCleanerUnderLoad(t *testing.T) {
	st := objstore.NewMemStore(false, 3)
	const size = 2 << 20
	require.NoError(t, Create(st, "b", Config{Size: size, BlockSize: 4096, SegmentSize: 1 << 20}))
	v := openChecked(t, st, "b", Options{CheckpointInterval: 2 << 20})
	v.StartCleaner(CleanerOptions{Interval: 5 * time.Millisecond, Trigger: 0.05, Rate: -1, MaxUtilization: 0.95})
	model := make([]byte, size)
	snaps := map[string][]byte{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, 64<<10)
			for i := 0; !isClosed(stop); i++ {
				if err := v.ReadAt(p, int64(i*4096)%(size-int64(len(p)))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	rng := rand.New(rand.NewSource(3))
	p := make([]byte, 16<<10)
	for i := 0; i < 4000; i++ {
		off := rng.Int63n(size/4096-4) * 4096
		rng.Read(p)
		require.NoError(t, v.WriteAt(p, off, false))
		copy(model[off:], p)
		switch {
		case i%500 == 250:
			name := fmt.Sprintf("s%d", i)
			require.NoError(t, v.CreateSnapshot(name))
			snaps[name] = append([]byte(nil), model...)
		case i%500 == 499 && len(snaps) > 1:
			for name := range snaps {
				require.NoError(t, v.DeleteSnapshot(name))
				delete(snaps, name)
				break
			}
		case i%100 == 0:
			require.NoError(t, v.Flush())
		}
	}
	close(stop)
	wg.Wait()
	checkVolumeContent(t, v, model, snaps, "while cleaning")
	require.NoError(t, v.Close())
	stored := storedSegmentBytes(t, st, "b")
	t.Logf("wrote %d MiB to a %d MiB volume; %d MiB of segments remain", 4000*len(p)>>20, size>>20, stored>>20)
	require.Less(t, stored, int64(4000*len(p)/2), "the cleaner should have reclaimed most of the log")
	v = openChecked(t, st, "b", Options{})
	checkVolumeContent(t, v, model, snaps, "after a restart")
	checkBooks(t, v)
	require.NoError(t, v.Close())
	rep, err := Fsck(st, "b", nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "%v", rep.Problems)
}

// TestGCKeepsWhatACloneMadeMeanwhileMayName registers a clone of a snapshot
// between copying its data and deleting the old segments, as a clone made
// during a pass would: the old segments are kept (keep objects) until the
// snapshot is gone, and only then freed.
func TestGCKeepsWhatACloneMadeMeanwhileMayName(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	v := newTestVolume(t, st, "src", 4<<20)
	p := bytes.Repeat([]byte{7}, 1<<20)
	for round := 0; round < 3; round++ {
		for off := int64(0); off < 4<<20; off += 1 << 20 {
			p[0] = byte(round)
			require.NoError(t, v.WriteAt(p, off, false))
		}
		if round == 0 {
			require.NoError(t, v.CreateSnapshot("s"))
		}
	}
	// The snapshot shares nothing with the live map: its segments are all
	// live, so clean regardless of utilization.
	v.gcMu.Lock()
	require.NoError(t, v.forceCheckpoints())
	stats, err := v.cleanPass(GCOptions{MaxUtilization: 1}, nil)
	require.NoError(t, err)
	require.Greater(t, stats.SegmentsCleaned, 0)
	require.NoError(t, writeObject(st, cloneRegName("src", "c"), []byte("s"))) // a clone being made
	require.NoError(t, v.forceCheckpoints())
	del, err := v.deleteReady()
	v.gcMu.Unlock()
	require.NoError(t, err)
	require.Greater(t, del.SegmentsKept, 0, "segments the snapshot named before the copy must stay")
	kept, err := st.List(gcDir("src"))
	require.NoError(t, err)
	require.Len(t, kept, del.SegmentsKept)
	for _, n := range kept {
		var seq uint64
		_, err := fmt.Sscanf(n, "keep-%016x", &seq)
		require.NoError(t, err)
		_, err = st.Open(segName("src", seq))
		require.NoError(t, err, "kept segment %d must exist", seq)
	}
	// A later gc leaves them while the snapshot exists...
	_, err = v.GC(GCOptions{})
	require.NoError(t, err)
	left, err := st.List(gcDir("src"))
	require.NoError(t, err)
	require.Equal(t, kept, left)
	// ...and frees them once it is gone (the clone never got a superblock).
	require.NoError(t, v.DeleteSnapshot("s"))
	_, err = v.GC(GCOptions{})
	require.NoError(t, err)
	left, err = st.List(gcDir("src"))
	require.NoError(t, err)
	require.Empty(t, left)
	for _, n := range kept {
		var seq uint64
		_, _ = fmt.Sscanf(n, "keep-%016x", &seq)
		_, err = st.Open(segName("src", seq))
		require.ErrorIs(t, err, objstore.ErrNotExist, "segment %d should be freed", seq)
	}
	checkBooks(t, v)
	require.NoError(t, v.Close())
}

// testLogger logs through t when HLFS_TEST_LOG is set.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("HLFS_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// TestGCFreesSnapshotDataOnlyAfterTheLastReference: data that a snapshot
// and a clone of it read survives gc; once the clone is flattened (or
// removed) and the snapshot removed, gc frees it.
func TestGCFreesSnapshotDataOnlyAfterTheLastReference(t *testing.T) {
	for _, detach := range []string{"flatten", "rm"} {
		t.Run(detach, func(t *testing.T) {
			st := objstore.NewMemStore(false, 1)
			const size = 4 << 20
			v := newTestVolume(t, st, "src", size)
			old := bytes.Repeat([]byte{1}, size)
			require.NoError(t, v.WriteAt(old, 0, false))
			require.NoError(t, v.CreateSnapshot("s"))
			require.NoError(t, v.Close())
			require.NoError(t, Clone(st, "src", "s", "c"))
			v = openChecked(t, st, "src", Options{})
			cur := bytes.Repeat([]byte{2}, size)
			for i := 0; i < 3; i++ {
				require.NoError(t, v.WriteAt(cur, 0, false))
			}
			_, err := v.GC(GCOptions{})
			require.NoError(t, err)
			held := storedSegmentBytes(t, st, "src")
			require.Greater(t, held, int64(2*size-size/8), "the snapshot's data must stay")
			checkVolumeContent(t, v, cur, map[string][]byte{"s": old}, "source after gc")
			require.NoError(t, v.Close())
			c := openChecked(t, st, "c", Options{ReadOnly: true})
			checkVolumeContent(t, c, old, nil, "clone after the source's gc")
			require.NoError(t, c.Close())

			if detach == "flatten" {
				require.NoError(t, Flatten(st, "c", nil))
			} else {
				require.NoError(t, Remove(st, "c"))
			}
			v = openChecked(t, st, "src", Options{})
			require.NoError(t, v.DeleteSnapshot("s"))
			_, err = v.GC(GCOptions{})
			require.NoError(t, err)
			freed := storedSegmentBytes(t, st, "src")
			t.Logf("%s: %d KiB of segments with the snapshot, %d KiB after", detach, held>>10, freed>>10)
			require.Less(t, freed, int64(size+size/8), "the snapshot's data should be freed")
			checkVolumeContent(t, v, cur, nil, "source after the snapshot went")
			checkBooks(t, v)
			require.NoError(t, v.Close())
			if detach == "flatten" {
				c := openChecked(t, st, "c", Options{ReadOnly: true})
				checkVolumeContent(t, c, old, nil, "flattened clone")
				require.NoError(t, c.Close())
			}
		})
	}
}

// TestReadOnlyOpenKeepsSegmentsUntilClosed: a read-only open (export,
// fsck) of a volume another process cleans keeps reading what it loaded:
// the owner deletes no segment while its read lease is fresh, and does once
// it is closed; a lease a crashed reader left goes stale.
func TestReadOnlyOpenKeepsSegmentsUntilClosed(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	const size = 4 << 20
	v := newTestVolume(t, st, "r", size)
	old := bytes.Repeat([]byte{1}, size)
	require.NoError(t, v.WriteAt(old, 0, false))
	require.NoError(t, v.Flush())
	_, err := v.GC(GCOptions{}) // checkpoints: the reader starts from one
	require.NoError(t, err)
	ro := openChecked(t, st, "r", Options{ReadOnly: true})
	cur := bytes.Repeat([]byte{2}, size)
	for i := 0; i < 3; i++ {
		require.NoError(t, v.WriteAt(cur, 0, false))
	}
	stats, err := v.GC(GCOptions{})
	require.NoError(t, err)
	require.Zero(t, stats.SegmentsDeleted, "nothing may go while a reader reads")
	checkVolumeContent(t, ro, old, nil, "the read-only view after the owner's gc")
	require.NoError(t, ro.Close())
	stats, err = v.GC(GCOptions{})
	require.NoError(t, err)
	require.Greater(t, stats.SegmentsDeleted, 0, "the reader is gone")
	checkVolumeContent(t, v, cur, nil, "the owner")

	// A lease a crashed reader left stops holding once it is stale.
	stale, err := json.Marshal(readLeaseRecord{Host: "h", PID: 1, Renewed: time.Now().Add(-2 * readLeaseTTL)})
	require.NoError(t, err)
	require.NoError(t, writeObject(st, readersDir("r")+"/0000000000000001", stale))
	for i := 0; i < 2; i++ {
		require.NoError(t, v.WriteAt(old, 0, false))
	}
	stats, err = v.GC(GCOptions{})
	require.NoError(t, err)
	require.Greater(t, stats.SegmentsDeleted, 0, "a stale lease holds nothing")
	left, err := st.List(readersDir("r"))
	require.NoError(t, err)
	require.Empty(t, left, "the stale lease is removed")
	require.NoError(t, v.Close())
}

// TestGCDefragmentsRandomlyWrittenData: every block of a volume written
// once in random order (4 KiB each: one extent per block, no garbage) is
// rewritten by gc in address order into one run extent per stretch, at
// most a few per segment; a snapshot taken before reads the same, the
// books stay exact, and the old segments are freed.
func TestGCDefragmentsRandomlyWrittenData(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	const size = 4 << 20
	require.NoError(t, Create(st, "d", Config{Size: size, SegmentSize: 1 << 20}))
	v := openChecked(t, st, "d", Options{CheckpointInterval: -1})
	rng := rand.New(rand.NewSource(5))
	live := make([]byte, size)
	blocks := rng.Perm(size / 4096)
	for i, b := range blocks {
		if i == len(blocks)/2 {
			require.NoError(t, v.CreateSnapshot("half"))
		}
		p := make([]byte, 4096)
		rng.Read(p)
		require.NoError(t, v.WriteAt(p, int64(b)*4096, false))
		copy(live[b*4096:], p)
	}
	snapData := func() []byte {
		view, err := v.SnapshotView("half")
		require.NoError(t, err)
		got := make([]byte, size)
		require.NoError(t, view.ReadAt(got, 0))
		return got
	}
	half := snapData()
	before := v.MapStats().Extents
	require.Greater(t, before, 900)
	var dv Usage
	dv, err := v.Usage()
	require.NoError(t, err)
	require.Equal(t, int64(size), dv.FragmentedBytes)
	stats, err := v.GC(GCOptions{Defrag: DefragAll})
	require.NoError(t, err)
	require.Equal(t, 4, stats.DefragWindows)
	require.Equal(t, int64(size), stats.DefragBytes)
	after := v.MapStats().Extents
	require.LessOrEqual(t, after, 8, "one run per stretch, split where client writes or segment ends interleave")
	checkVolumeContent(t, v, live, map[string][]byte{"half": half}, "after defrag")
	checkBooks(t, v)
	dv, err = v.Usage()
	require.NoError(t, err)
	require.Zero(t, dv.FragmentedBytes)
	require.Less(t, dv.SegmentBytes, int64(size*2), "the old records' segments are freed")
	// A second run finds nothing to rewrite.
	stats, err = v.GC(GCOptions{Defrag: DefragAll})
	require.NoError(t, err)
	require.Zero(t, stats.DefragWindows)
	require.NoError(t, v.Close())
	v = openChecked(t, st, "d", Options{})
	require.Equal(t, after, v.MapStats().Extents)
	checkVolumeContent(t, v, live, map[string][]byte{"half": half}, "after reopen")
	require.NoError(t, v.Close())
	rep, err := Fsck(st, "d", nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "fsck: %v", rep.Problems)
}
