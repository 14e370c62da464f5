package blockmap

import (
	"math/rand"
	"runtime"
)

// mapBytesPerExtent measures heap bytes per extent after n random 4 KiB
// writes into a 4x larger space.
func mapBytesPerExtent(n int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := New()
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < n; i++ {
		blk := rng.Int63n(int64(n) * 4)
		m.Set(Extent{Off: blk * 4096, Length: 4096, Seq: uint32(i), PayLen: 4096})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / float64(m.Len())
	runtime.KeepAlive(m)
	return per
}
