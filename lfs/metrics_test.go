package lfs

import (
	"math/rand"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// writeRandomRange writes length random bytes at off in 64 KiB writes.
func writeRandomRange(t *testing.T, v *Volume, rng *rand.Rand, off, length int64) {
	t.Helper()
	for o := off; o < off+length; o += 64 << 10 {
		writeRandom(t, v, rng, o, 64<<10)
	}
}

func TestCleanerCopiedBytesCountsWhatGCCopied(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	v := newTestVolume(t, st, "c", 8<<20)
	rng := rand.New(rand.NewSource(1))
	writeRandomRange(t, v, rng, 0, 8<<20)
	// Overwrite every other 64 KiB: the first segments are half garbage.
	for off := int64(0); off < 8<<20; off += 128 << 10 {
		writeRandomRange(t, v, rng, off, 64<<10)
	}
	require.Zero(t, v.CleanerCopiedBytes())
	stats, err := v.GC(GCOptions{})
	require.NoError(t, err)
	require.Positive(t, stats.BytesCopied)
	require.Equal(t, stats.BytesCopied, v.CleanerCopiedBytes())
	stats2, err := v.GC(GCOptions{})
	require.NoError(t, err)
	require.Equal(t, stats.BytesCopied+stats2.BytesCopied, v.CleanerCopiedBytes(), "a counter since open")
}

func TestSpaceEstimateFromTheBackgroundCleaner(t *testing.T) {
	st := objstore.NewMemStore(false, 2)
	v := newTestVolume(t, st, "s", 8<<20)
	rng := rand.New(rand.NewSource(2))
	writeRandomRange(t, v, rng, 0, 4<<20)
	writeRandomRange(t, v, rng, 0, 2<<20) // 2 MiB of the first segments are garbage now
	writeRandomRange(t, v, rng, 4<<20, 2<<20)
	require.NoError(t, v.Flush())
	_, _, ok := v.SpaceEstimate()
	require.False(t, ok, "no estimate before the cleaner looked")

	// A trigger never reached: the cleaner only looks.
	v.StartCleaner(CleanerOptions{Interval: 5 * time.Millisecond, Trigger: 0.99})
	deadline := time.Now().Add(10 * time.Second)
	for _, _, ok = v.SpaceEstimate(); !ok; _, _, ok = v.SpaceEstimate() {
		require.True(t, time.Now().Before(deadline), "no estimate after 10 s")
		time.Sleep(time.Millisecond)
	}
	stored, garbage, _ := v.SpaceEstimate()
	all := storedSegmentBytes(t, st, "s")
	t.Logf("estimate: stored %d garbage %d; all segments %d", stored, garbage, all)
	// 8 MiB were written: the closed segments hold at least 6 of them (the
	// one being written holds at most 1 MiB plus headers), the 2 MiB
	// overwritten are garbage, with record headers on top.
	require.LessOrEqual(t, stored, all)
	require.GreaterOrEqual(t, stored, int64(6<<20))
	require.GreaterOrEqual(t, garbage, int64(2<<20))
	require.Less(t, garbage, int64(2<<20)+int64(64<<10))
	require.Zero(t, v.CleanerCopiedBytes(), "nothing cleaned under the trigger")
}
