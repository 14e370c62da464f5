package lfs

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// poolNames lists the volume's pool.
func poolNames(t *testing.T, st objstore.Store, vol string) []string {
	t.Helper()
	names, err := st.List(poolDir(vol))
	require.NoError(t, err)
	return names
}

// TestSegmentPoolRecyclesAndSurvivesCrash: gc moves deleted segments into
// the pool (no more than its bound under load, poolDemandFactor times
// Options.SegmentPool), new segments are written over them,
// and a crash while a recycled segment is the last one, with far more
// stale bytes past its end than it wrote, recovers exactly the flushed
// data: no stale record is replayed and none is called corruption.
func TestSegmentPoolRecyclesAndSurvivesCrash(t *testing.T) {
	simulateOwnDeath(t)
	st := objstore.NewMemStore(false, 3)
	const size = 4 << 20
	require.NoError(t, Create(st, "p", Config{Size: size, SegmentSize: 1 << 20}))
	opts := Options{CheckpointInterval: -1, SegmentPool: 1, Logger: testLogger(t)}
	v := openChecked(t, st.Session(), "p", opts)
	rng := rand.New(rand.NewSource(1))
	model := make([]byte, size)
	write := func(off, n int) {
		b := make([]byte, n)
		rng.Read(b)
		require.NoError(t, v.WriteAt(b, int64(off), false))
		copy(model[off:], b)
	}
	for pass := 0; pass < 3; pass++ {
		for off := 0; off < size; off += 64 << 10 {
			write(off, 64<<10)
		}
	}
	require.NoError(t, v.Flush())
	stats, err := v.GC(GCOptions{})
	require.NoError(t, err)
	require.Greater(t, stats.SegmentsDeleted, poolDemandFactor)
	require.Len(t, poolNames(t, st, "p"), poolDemandFactor, "the pool fills up to its bound; the rest is removed")

	// Write until a new segment is written over a pooled object of 1 MiB
	// and holds a few flushed writes; then one that is not flushed, and
	// the crash.
	for off := 0; len(poolNames(t, st, "p")) == poolDemandFactor; off += 64 << 10 {
		require.Less(t, off, size, "no new segment took a pooled object")
		write(off, 64<<10)
		require.NoError(t, v.Flush())
	}
	require.Len(t, poolNames(t, st, "p"), poolDemandFactor-1)
	flushed := append([]byte(nil), model...)
	write(1<<20, 8<<10)
	st.Crash()
	_ = v.Close()

	v = openChecked(t, st.Session(), "p", opts)
	got := make([]byte, size)
	require.NoError(t, v.ReadAt(got, 0))
	if !bytes.Equal(got, flushed) && !bytes.Equal(got, model) {
		t.Fatal("recovered data is neither the flushed state nor the flushed state plus the last write")
	}
	require.NoError(t, v.Check())
	rep, err := Fsck(st, "p", nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "fsck: %+v", rep)
	require.NoError(t, v.Close())
	require.Empty(t, poolNames(t, st, "p"), "closing empties the pool")
}

// TestCrashAtEveryStoreOperationWhileRecycling: from a volume whose pool
// holds deleted segments' objects, a workload writes, with flushes, across
// a new segment written over a pooled object; the store dies at its k-th
// operation, for every k until the workload completes. After each crash
// the volume reads the flushed writes plus a prefix of the later ones,
// checks out, and fsck finds nothing but what it set aside.
func TestCrashAtEveryStoreOperationWhileRecycling(t *testing.T) {
	simulateOwnDeath(t)
	const size = 4 << 20
	base := objstore.NewMemStore(false, 0)
	require.NoError(t, Create(base, "r", Config{Size: size, BlockSize: 4096, SegmentSize: 1 << 20}))
	opts := Options{CheckpointInterval: -1, SegmentPool: 4}
	v := openChecked(t, base, "r", opts)
	rng := rand.New(rand.NewSource(5))
	baseModel := make([]byte, size)
	for pass := 0; pass < 3; pass++ {
		for off := 0; off < size; off += 32 << 10 {
			b := make([]byte, 32<<10)
			rng.Read(b)
			require.NoError(t, v.WriteAt(b, int64(off), false))
			copy(baseModel[off:], b)
		}
	}
	_, err := v.GC(GCOptions{})
	require.NoError(t, err)
	pooled := len(poolNames(t, base, "r"))
	require.GreaterOrEqual(t, pooled, 4)
	v.Abandon() // keeps the pool, as a crash would

	// The workload: 14 writes of 96 KiB (over a segment boundary), a flush
	// after every fourth.
	var ops []modelOp
	for i := 0; i < 14; i++ {
		b := make([]byte, 96<<10)
		rng.Read(b)
		ops = append(ops, modelOp{kind: "write", off: int64(i) * 160 << 10, data: b})
	}
	for k := 1; ; k++ {
		st := base.Clone(int64(k))
		durable := bytes.Clone(baseModel)
		v, err := Open(st.Session(), "r", opts)
		require.NoError(t, err)
		dead := dieFrom(st, k)
		var pending []modelOp
		for i, op := range ops {
			if op.applyVolume(v) != nil {
				break
			}
			pending = append(pending, op)
			if i%4 == 3 {
				if v.Flush() != nil {
					break
				}
				for _, p := range pending {
					p.applyModel(durable)
				}
				pending = nil
			}
		}
		v.Abandon()
		st.SetInjector(nil)
		recycled := len(poolNames(t, st, "r")) < pooled
		st.Crash()
		what := fmt.Sprintf("k=%d", k)
		v, err = Open(st, "r", Options{CheckpointInterval: -1, SegmentPool: -1})
		require.NoError(t, err, what)
		got := make([]byte, size)
		require.NoError(t, v.ReadAt(got, 0))
		requirePrefixState(t, got, durable, pending)
		requireCheck(t, v, what)
		require.NoError(t, v.Close())
		requireFsckAfterCrash(t, st, "r", what)
		if !dead.Load() {
			require.True(t, recycled, "the workload should write over pooled objects")
			require.Greater(t, k, 10)
			t.Logf("crashed at each of %d store operations", k-1)
			break
		}
	}
}

// TestSegmentPoolFollowsTheWriter: with a cleaner whose interval is an
// hour, only the log writer finding the pool empty can start its steps;
// they delete what the writes made garbage and the pool fills past
// Options.SegmentPool (the writer started more segments than that in the
// last poolWindow). Once the writer is idle for poolIdle, the pool
// shrinks back to Options.SegmentPool.
func TestSegmentPoolFollowsTheWriter(t *testing.T) {
	st := objstore.NewMemStore(false, 0)
	const size = 4 << 20
	require.NoError(t, Create(st, "f", Config{Size: size, SegmentSize: 1 << 20}))
	opts := Options{CheckpointInterval: -1, SegmentPool: 2, Logger: testLogger(t)}
	v := openChecked(t, st.Session(), "f", opts)
	defer v.Close()
	v.StartCleaner(CleanerOptions{Interval: time.Hour})
	b := make([]byte, 64<<10)
	rand.New(rand.NewSource(3)).Read(b)
	deadline := time.Now().Add(20 * time.Second)
	for len(poolNames(t, st, "f")) <= opts.SegmentPool {
		require.True(t, time.Now().Before(deadline), "the pool never grew past its least bound")
		for off := 0; off < size; off += len(b) {
			require.NoError(t, v.WriteAt(b, int64(off), false))
		}
		require.NoError(t, v.Flush())
	}
	require.LessOrEqual(t, len(poolNames(t, st, "f")), poolDemandFactor*opts.SegmentPool)

	// Idle: a step sees the writes since the last one, the next one
	// within poolIdle keeps the pool, one after it trims it.
	step := func() { require.NoError(t, v.cleanStep(CleanerOptions{}.withDefaults())) }
	step()
	step()
	require.Greater(t, len(poolNames(t, st, "f")), opts.SegmentPool, "trimmed before the writer was idle for poolIdle")
	v.gcMu.Lock()
	v.gc.poolIdle = 0
	v.gcMu.Unlock()
	step()
	require.Len(t, poolNames(t, st, "f"), opts.SegmentPool)
}

// TestPoolBoundFollowsThePace: the pool's bound is what the log writer
// started in the last poolWindow, between Options.SegmentPool and
// poolDemandFactor times that; deletions back to back keep it (a bound
// from the segments started between two deletions fell by half at each);
// a window with no new segment brings it down to the least.
func TestPoolBoundFollowsThePace(t *testing.T) {
	st := objstore.NewMemStore(false, 0)
	require.NoError(t, Create(st, "b", Config{Size: 4 << 20, SegmentSize: 1 << 20}))
	v := openChecked(t, st, "b", Options{CheckpointInterval: -1, SegmentPool: 2})
	defer v.Close()
	v.gcMu.Lock()
	defer v.gcMu.Unlock()
	started := v.lw.started.Load()
	v.lw.started.Add(10)
	require.Equal(t, 10, v.poolBoundNow())
	require.Equal(t, 10, v.poolBoundNow(), "a deletion right after another")
	v.lw.started.Add(100)
	require.Equal(t, poolDemandFactor*2, v.poolBoundNow(), "at most poolDemandFactor times the least")

	// poolWindow later, with no segment started meanwhile.
	for i := range v.gc.pace {
		v.gc.pace[i].at = v.gc.pace[i].at.Add(-poolWindow)
	}
	require.Equal(t, 2, v.poolBoundNow())
	v.lw.started.Add(5)
	require.Equal(t, 5, v.poolBoundNow())
	require.LessOrEqual(t, len(v.gc.pace), 3, "samples older than the window's base are dropped")
	require.Equal(t, started+115, v.gc.pace[len(v.gc.pace)-1].started)
}
