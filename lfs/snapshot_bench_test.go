package lfs

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
)

// fillVolume writes n bytes of 64 KiB random-offset writes and flushes.
func fillVolume(b *testing.B, v *Volume, n int64) {
	rng := rand.New(rand.NewSource(1))
	p := make([]byte, 64<<10)
	rng.Read(p)
	slots := v.Size() / int64(len(p))
	for off := int64(0); off < n; off += int64(len(p)) {
		if err := v.WriteAt(p, rng.Int63n(slots)*int64(len(p)), false); err != nil {
			b.Fatal(err)
		}
	}
	if err := v.Flush(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSnapshotCreate reports the latency of CreateSnapshot on a volume
// with 1 GiB and 10 GiB written (target: under 50 ms, independent of size).
func BenchmarkSnapshotCreate(b *testing.B) {
	for _, gib := range []int64{1, 10} {
		b.Run(fmt.Sprintf("%dGiB-written", gib), func(b *testing.B) {
			st, err := objstore.NewDirStore(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			if err := Create(st, "s", Config{Size: 2 * gib << 30}); err != nil {
				b.Fatal(err)
			}
			v, err := Open(st, "s", Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer v.Close()
			fillVolume(b, v, gib<<30)
			b.ResetTimer()
			var worst time.Duration
			for i := 0; i < b.N; i++ {
				// A little unflushed data, as a live guest would have.
				if err := v.WriteAt(make([]byte, 4096), int64(i)*4096, false); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				if err := v.CreateSnapshot(fmt.Sprintf("s%d", i)); err != nil {
					b.Fatal(err)
				}
				worst = max(worst, time.Since(start))
			}
			b.ReportMetric(float64(worst.Microseconds())/1000, "ms-worst")
			b.ReportMetric(float64(v.mu.m.Len()), "extents")
		})
	}
}

// BenchmarkCloneDepthRead reports 4 KiB random read cost through clone
// chains of depth 0, 8, 32 and 64 (data in the base; target: depth 64 within
// 0.9x of depth 0).
func BenchmarkCloneDepthRead(b *testing.B) {
	st, err := objstore.NewDirStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	const size = 256 << 20
	if err := Create(st, "d0", Config{Size: size}); err != nil {
		b.Fatal(err)
	}
	v, err := Open(st, "d0", Options{})
	if err != nil {
		b.Fatal(err)
	}
	fillVolume(b, v, size)
	vols := map[int]*Volume{0: v}
	prev := v
	for d := 1; d <= 64; d++ {
		if err := prev.CreateSnapshot("s"); err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("d%d", d)
		if err := prev.checkpoint(); err != nil { // materialize the snapshot map
			b.Fatal(err)
		}
		if err := Clone(st, prev.Name(), "s", name); err != nil {
			b.Fatal(err)
		}
		if prev, err = Open(st, name, Options{}); err != nil {
			b.Fatal(err)
		}
		// A little data of its own at each level, so the map mixes branches.
		if err := prev.WriteAt(make([]byte, 4096), int64(d)*1<<20, false); err != nil {
			b.Fatal(err)
		}
		vols[d] = prev
	}
	for _, d := range []int{0, 8, 32, 64} {
		b.Run(fmt.Sprintf("depth-%d", d), func(b *testing.B) {
			rng := rand.New(rand.NewSource(2))
			p := make([]byte, 4096)
			b.SetBytes(4096)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := vols[d].ReadAt(p, rng.Int63n(size/4096)*4096); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.StopTimer()
	for _, v := range vols {
		_ = v.Close()
	}
}
