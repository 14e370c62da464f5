package lfs

import (
	"bytes"
	"math/rand"
	"sync/atomic"
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// TestSegBufMatchesAModel: random appends (copied) and keeps (by
// reference) of every size read back, and write to a store from any
// offset, as their concatenation; snapshots taken between appends still
// read their own prefix; free releases each kept payload exactly once and
// returns to the pool only chunks that came from it.
func TestSegBufMatchesAModel(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for round := 0; round < 2; round++ {
		var b segBuf
		var model []byte
		var releases atomic.Int32
		var kept []*keptPayload
		type snap struct {
			buf  segBuf
			want []byte
		}
		var snaps []snap
		for op := 0; op < 60; op++ {
			n := rng.Intn(4) * rng.Intn(48<<10)
			p := make([]byte, n)
			rng.Read(p)
			if n >= keepMin && rng.Intn(2) == 0 {
				k := newKeptPayload(func() { releases.Add(1) })
				b.keep(p, k)
				k.drop() // the writer's hold
				kept = append(kept, k)
			} else {
				b.append(p)
			}
			model = append(model, p...)
			require.Equal(t, len(model), b.len())
			if rng.Intn(10) == 0 {
				snaps = append(snaps, snap{b, bytes.Clone(model)})
			}
		}
		require.Equal(t, model, b.bytes())
		for i := 0; i < 20; i++ {
			off := rng.Intn(len(model))
			n := rng.Intn(len(model) - off + 1)
			got := make([]byte, n)
			b.readAt(got, off)
			require.Equal(t, model[off:off+n], got)
		}
		for _, s := range snaps {
			require.Equal(t, s.want, s.buf.bytes(), "a snapshot reads its prefix while appends go on")
		}
		st := objstore.NewMemStore(false, 0)
		w, err := st.Create("o")
		require.NoError(t, err)
		from := rng.Intn(len(model))
		require.NoError(t, b.writeTo(w, from))
		require.NoError(t, w.Close())
		got, err := readObject(st, "o")
		require.NoError(t, err)
		require.Equal(t, model[from:], got)

		for _, c := range b.pooled {
			require.Equal(t, segChunk, len(c))
		}
		require.Zero(t, releases.Load(), "a kept payload was released while the segment holds it")
		b.free()
		require.Equal(t, int32(len(kept)), releases.Load())
		require.Zero(t, b.len())
	}
}
