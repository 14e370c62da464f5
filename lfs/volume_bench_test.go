package lfs

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
)

func benchVolume(b *testing.B, size int64) (*Volume, objstore.Store) {
	st, err := objstore.NewDirStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	if err := Create(st, "b", Config{Size: size}); err != nil {
		b.Fatal(err)
	}
	v, err := Open(st, "b", Options{})
	if err != nil {
		b.Fatal(err)
	}
	return v, st
}

// BenchmarkWrite measures the engine alone (no NBD) on the local store:
// sequential writes of several sizes and random 4 KiB writes.
func BenchmarkWrite(b *testing.B) {
	const size = 1 << 30
	for _, bs := range []int{4 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("seq-%dK", bs>>10), func(b *testing.B) {
			v, _ := benchVolume(b, size)
			defer v.Close()
			p := make([]byte, bs)
			rand.New(rand.NewSource(1)).Read(p)
			b.SetBytes(int64(bs))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := v.WriteAt(p, int64(i*bs)%size, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("rand-4K", func(b *testing.B) {
		v, _ := benchVolume(b, size)
		defer v.Close()
		rng := rand.New(rand.NewSource(1))
		p := make([]byte, 4096)
		rng.Read(p)
		b.SetBytes(4096)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := v.WriteAt(p, rng.Int63n(size/4096)*4096, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReopen reports the time to open a volume with 1 GiB of log
// written since its last checkpoint (checkpoints disabled while writing).
func BenchmarkReopen(b *testing.B) {
	st, err := objstore.NewDirStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	if err := Create(st, "r", Config{Size: 4 << 30}); err != nil {
		b.Fatal(err)
	}
	v, err := Open(st, "r", Options{CheckpointInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	p := make([]byte, 64<<10)
	rng.Read(p)
	for off := int64(0); off < 1<<30; off += int64(len(p)) {
		if err := v.WriteAt(p, rng.Int63n(4<<30/int64(len(p)))*int64(len(p)), false); err != nil {
			b.Fatal(err)
		}
	}
	// Stop without the checkpoint Close would write.
	if err := v.lw.close(); err != nil {
		b.Fatal(err)
	}
	v.readers.close()
	v.releaseOwner()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		r, err := Open(st, "r", Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/reopen-1GiB-log")
		b.ReportMetric(float64(r.stats.replayed>>20), "MiB-replayed")
		_ = r.Close()
	}
}

// BenchmarkWriteFlush32 is 4 KiB random writes with a flush after every 32,
// as fio --fsync=32 does; ns/op is per write.
func BenchmarkWriteFlush32(b *testing.B) {
	v, _ := benchVolume(b, 1<<30)
	defer v.Close()
	rng := rand.New(rand.NewSource(1))
	p := make([]byte, 4096)
	rng.Read(p)
	b.SetBytes(4096)
	var flushTime time.Duration
	flushes := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := v.WriteAt(p, rng.Int63n(1<<30/4096)*4096, false); err != nil {
			b.Fatal(err)
		}
		if i%32 == 31 {
			start := time.Now()
			if err := v.Flush(); err != nil {
				b.Fatal(err)
			}
			flushTime += time.Since(start)
			flushes++
		}
	}
	if flushes > 0 {
		b.ReportMetric(float64(flushTime.Microseconds())/float64(flushes), "us/flush")
	}
}
