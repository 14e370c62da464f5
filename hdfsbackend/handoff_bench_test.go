package hdfsbackend_test

import (
	"testing"

	"github.com/hlfs/hlfs/hdfsbackend"
	"github.com/hlfs/hlfs/hdfsbackend/hdfstest"
	"github.com/hlfs/hlfs/internal/roamtest"
)

// BenchmarkHDFSHandOff is lfs's BenchmarkHandOff on the HDFS mini-cluster
// (issue 12's target: p99 <= 2 s).
func BenchmarkHDFSHandOff(b *testing.B) {
	for i := 0; i < b.N; i++ {
		roamtest.Report(b, roamtest.HandOffs(b, hdfstest.NewStore(b, hdfsbackend.Options{}), "mig", 50))
	}
}
