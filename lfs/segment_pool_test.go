package lfs

import (
	"bytes"
	"math/rand"
	"testing"

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
// the pool (no more than its bound), new segments are written over them,
// and a crash while a recycled segment is the last one, with far more
// stale bytes past its end than it wrote, recovers exactly the flushed
// data: no stale record is replayed and none is called corruption.
func TestSegmentPoolRecyclesAndSurvivesCrash(t *testing.T) {
	simulateOwnDeath(t)
	st := objstore.NewMemStore(false, 3)
	const size = 4 << 20
	require.NoError(t, Create(st, "p", Config{Size: size, SegmentSize: 1 << 20}))
	opts := Options{CheckpointInterval: -1, SegmentPool: 3, Logger: testLogger(t)}
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
	require.Greater(t, stats.SegmentsDeleted, 3)
	require.Len(t, poolNames(t, st, "p"), 3, "the pool fills up to its bound; the rest is removed")

	// Write until a new segment is written over a pooled object of 1 MiB
	// and holds a few flushed writes; then one that is not flushed, and
	// the crash.
	for off := 0; len(poolNames(t, st, "p")) == 3; off += 64 << 10 {
		require.Less(t, off, size, "no new segment took a pooled object")
		write(off, 64<<10)
		require.NoError(t, v.Flush())
	}
	require.Len(t, poolNames(t, st, "p"), 2)
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
