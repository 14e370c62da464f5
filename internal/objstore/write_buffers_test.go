package objstore

import (
	"bytes"
	"math/rand"
	"testing"
)

// TestDropWrittenAfterShortWrites: whatever count of bytes each writev
// reports, short or not, what dropWritten leaves is exactly the bytes not
// yet written, in order; empty buffers go with a write of nothing; and the
// caller's slice is never changed.
func TestDropWrittenAfterShortWrites(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for round := 0; round < 500; round++ {
		var bufs [][]byte
		for i := rng.Intn(6); i >= 0; i-- {
			b := make([]byte, rng.Intn(10)) // empty ones too
			rng.Read(b)
			bufs = append(bufs, b)
		}
		orig := append([][]byte(nil), bufs...)
		all := bytes.Join(bufs, nil)
		left, written := bufs, 0
		for written < len(all) {
			n := 1 + rng.Intn(len(all)-written) // a short write, or the rest
			left = dropWritten(left, n)
			written += n
			if got := bytes.Join(left, nil); !bytes.Equal(got, all[written:]) {
				t.Fatalf("round %d: after %d bytes, left %x, want %x", round, written, got, all[written:])
			}
		}
		if left = dropWritten(left, 0); len(left) != 0 {
			t.Fatalf("round %d: %d empty buffers left after a write of nothing", round, len(left))
		}
		for i := range orig {
			if len(bufs[i]) != len(orig[i]) || len(orig[i]) > 0 && &bufs[i][0] != &orig[i][0] {
				t.Fatalf("round %d: the caller's buffer %d changed", round, i)
			}
		}
	}
}
