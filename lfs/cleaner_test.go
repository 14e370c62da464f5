package lfs

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// checkBooks recounts the books from every map and compares, when the
// volume claims they are exact.
func checkBooks(t *testing.T, v *Volume) {
	t.Helper()
	require.NoError(t, v.verifyBooks())
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
	v, err = Open(st, "g", Options{})
	require.NoError(t, err)
	checkAgainstModel(t, v, model, rng)
	checkBooks(t, v)

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
