package blockmap

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"
)

// flatMap is the model: which (seq, record byte) each volume byte maps to.
type flatMap []int64 // -1: hole; else seq<<32 | payload offset + index into the record data

func (f flatMap) set(e Extent) {
	for x := e.Off; x < e.End(); x++ {
		p, d := e.RecordAt(x)
		f[x] = int64(e.Seq)<<32 | (int64(p) + int64(d))
	}
}

func (f flatMap) punch(off, n int64) {
	for i := off; i < off+n && i < int64(len(f)); i++ {
		f[i] = -1
	}
}

func flatten(m *Map, size int) flatMap {
	f := make(flatMap, size)
	f.punch(0, int64(size))
	m.Ascend(func(e Extent) bool { f.set(e); return true })
	return f
}

// TestExtentMapProperty compares set/punch/visit with a flat model, and
// covers clone followed by deletes in both copies (google/btree issue #60).
func TestExtentMapProperty(t *testing.T) {
	const size = 4096
	rng := rand.New(rand.NewSource(42))
	m := New()
	model := make(flatMap, size)
	model.punch(0, size)
	var clones []*Map
	var cloneModels []flatMap
	seq := uint32(1)
	for i := 0; i < 5000; i++ {
		off := rng.Int63n(size)
		n := 1 + rng.Int63n(min(size-off, 300))
		switch rng.Intn(10) {
		case 0:
			clones = append(clones, m.Clone())
			cloneModels = append(cloneModels, append(flatMap(nil), model...))
		case 1, 2, 3:
			m.Punch(off, n)
			model.punch(off, n)
		default:
			e := Extent{Off: off, Length: uint32(n), Seq: seq, PayLen: uint32(n)}
			seq++
			m.Set(e)
			model.set(e)
		}
		if len(clones) > 0 && rng.Intn(4) == 0 { // mutate an older clone too
			c := rng.Intn(len(clones))
			clones[c].Punch(off, n)
			cloneModels[c].punch(off, n)
		}
		if i%97 == 0 {
			require.Equal(t, model, flatten(m, size), "step %d", i)
			require.Empty(t, m.Problems(size))
		}
	}
	require.Equal(t, model, flatten(m, size))
	for c := range clones {
		require.Equal(t, cloneModels[c], flatten(clones[c], size), "clone %d", c)
		require.Empty(t, clones[c].Problems(size))
	}
	// visit clips to the range and sees exactly the mapped bytes.
	for i := 0; i < 200; i++ {
		off := rng.Int63n(size)
		n := 1 + rng.Int63n(size-off)
		got := make(flatMap, size)
		got.punch(0, size)
		m.Visit(off, n, func(e Extent) bool {
			require.GreaterOrEqual(t, e.Off, off)
			require.LessOrEqual(t, e.End(), off+n)
			got.set(e)
			return true
		})
		want := make(flatMap, size)
		want.punch(0, size)
		copy(want[off:off+n], model[off:off+n])
		require.Equal(t, want, got)
	}
}

// BenchmarkExtentMapMemory reports the bytes of heap per extent of a map
// filled by random 4 KiB writes (target: at most 48).
func BenchmarkExtentMapMemory(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.ReportMetric(mapBytesPerExtent(1<<20), "bytes/extent")
	}
}
