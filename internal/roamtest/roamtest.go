// Package roamtest measures how long a volume takes to move between two
// processes (lfs.Roaming): the extra downtime of a live migration. The
// benchmarks of lfs (local store) and hdfsbackend (HDFS) use it; it is for
// tests only.
package roamtest

import (
	"context"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/lfs"
)

// HandOffs creates volume name (16 MiB) in st, opens it twice as two
// Roamings that ask each other over a direct call (as serve's channel
// would, minus the network), and moves it back and forth n times. Before
// each move the owner writes 1 MiB in 64 KiB writes, unflushed, so the
// hand-off has something to make durable. It returns, sorted, the time of
// each first write on the standby: asking, the owner's flush, checkpoint
// and release, the new owner's open, and the write.
func HandOffs(tb testing.TB, st objstore.Store, name string, n int) []time.Duration {
	tb.Helper()
	const size = 16 << 20
	if err := lfs.Create(st, name, lfs.Config{Size: size}); err != nil {
		tb.Fatal(err)
	}
	var sides [2]*lfs.Roaming
	for i := range sides {
		to := 1 - i
		r, err := lfs.OpenRoaming(st, name, lfs.Options{}, lfs.RoamOptions{
			Ask: func(_ context.Context, owner lfs.OwnerRecord) error {
				return sides[to].ServeHandOff(lfs.NewHandOffRequest(name, owner).Encode())
			}})
		if err != nil {
			tb.Fatal(err)
		}
		sides[i] = r
	}
	defer func() {
		for _, r := range sides {
			_ = r.Close()
		}
	}()
	rng := rand.New(rand.NewSource(1))
	p := make([]byte, 64<<10)
	var took []time.Duration
	for i := 1; i <= n; i++ {
		from, to := sides[1-i%2], sides[i%2]
		for k := 0; k < 16; k++ {
			rng.Read(p)
			if err := from.WriteAt(p, rng.Int63n(size/int64(len(p)))*int64(len(p)), false); err != nil {
				tb.Fatal(err)
			}
		}
		rng.Read(p)
		start := time.Now()
		if err := to.WriteAt(p, 0, false); err != nil {
			tb.Fatal(err)
		}
		took = append(took, time.Since(start))
		if !to.Owner() || from.Owner() {
			tb.Fatalf("hand-off %d: the volume did not move", i)
		}
	}
	slices.Sort(took)
	return took
}

// Report adds the median and p99 of took (sorted) to b's results.
func Report(b *testing.B, took []time.Duration) {
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(took[(len(took)*99+99)/100-1].Microseconds())/1000, "ms-p99")
	b.ReportMetric(0, "ns/op")
}
