package metrics_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/metrics"
	"github.com/hlfs/hlfs/nbdserver"
)

// BenchmarkObserve is the cost metrics add to each NBD request, with
// goroutines observing at once as the server's workers do, among 1000
// open volumes.
func BenchmarkObserve(b *testing.B) {
	m := metrics.New()
	for i := range 1000 {
		m.AddVolume(fmt.Sprintf("vm%d", i), fakeVolume{})
	}
	ev := nbdserver.RequestEvent{Export: "vm500", Op: "write", Bytes: 4096, Duration: 100 * time.Microsecond}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Observe(ev)
		}
	})
}
