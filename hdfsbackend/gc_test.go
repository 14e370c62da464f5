package hdfsbackend_test

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/hlfs/hlfs/hdfsbackend"
	"github.com/hlfs/hlfs/hdfsbackend/hdfstest"
	"github.com/hlfs/hlfs/lfs"
	"github.com/stretchr/testify/require"
)

// TestGCOnHDFS cleans a volume on HDFS whose data is overwritten, trimmed
// and shared with a snapshot: the content survives gc and a restart, fsck
// (which recounts the space books) is clean, and the segments shrink.
func TestGCOnHDFS(t *testing.T) {
	st := hdfstest.NewStore(t, hdfsbackend.Options{})
	const size = 8 << 20
	require.NoError(t, lfs.Create(st, "g", lfs.Config{Size: size, SegmentSize: 1 << 20}))
	v, err := lfs.Open(st, "g", lfs.Options{})
	require.NoError(t, err)
	rng := rand.New(rand.NewSource(1))
	live := make([]byte, size)
	p := make([]byte, 256<<10)
	for round := 0; round < 3; round++ {
		for off := int64(0); off < size; off += int64(len(p)) {
			rng.Read(p)
			require.NoError(t, v.WriteAt(p, off, false))
			copy(live[off:], p)
		}
		if round == 1 {
			require.NoError(t, v.CreateSnapshot("s"))
		}
	}
	snap := make([]byte, size)
	view, err := v.SnapshotView("s")
	require.NoError(t, err)
	require.NoError(t, view.ReadAt(snap, 0))
	require.NoError(t, v.Zero(0, size/2, true, false))
	clear(live[:size/2])

	before, err := lfs.DiskUsage(st, "g")
	require.NoError(t, err)
	stats, err := v.GC(lfs.GCOptions{})
	require.NoError(t, err)
	require.Greater(t, stats.SegmentsDeleted, 0)
	got := make([]byte, size)
	require.NoError(t, v.ReadAt(got, 0))
	require.True(t, bytes.Equal(got, live), "the volume changed under gc")
	require.NoError(t, view.ReadAt(got, 0))
	require.True(t, bytes.Equal(got, snap), "the snapshot changed under gc")
	require.NoError(t, v.Close())

	after, err := lfs.DiskUsage(st, "g")
	require.NoError(t, err)
	t.Logf("segments: %d MiB before gc, %d MiB after; live %d MiB; gc %+v", before.SegmentBytes>>20, after.SegmentBytes>>20, after.Live>>20, stats)
	require.Less(t, after.SegmentBytes, before.SegmentBytes*2/3)
	require.Less(t, after.SegmentBytes, after.Live+4<<20)

	v, err = lfs.Open(st, "g", lfs.Options{ReadOnly: true})
	require.NoError(t, err)
	require.NoError(t, v.ReadAt(got, 0))
	require.True(t, bytes.Equal(got, live), "the volume differs after a restart")
	require.NoError(t, v.Close())
	rep, err := lfs.Fsck(st, "g", nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "%v", rep.Problems)
	require.True(t, rep.BooksExact)
}
