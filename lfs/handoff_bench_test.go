package lfs_test

import (
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/internal/roamtest"
)

// BenchmarkHandOff moves a volume on the local store (a directory) between
// two Roamings 50 times per iteration and reports the median and p99 time
// of the first write on the standby: the extra downtime a live migration
// pays (issue 12's target: p99 <= 200 ms), without the network round trip
// of serve's channel.
func BenchmarkHandOff(b *testing.B) {
	for i := 0; i < b.N; i++ {
		st, err := objstore.NewDirStore(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		roamtest.Report(b, roamtest.HandOffs(b, st, "mig", 50))
	}
}
