package blockmap

import (
	"math/rand"
	"testing"

	"github.com/hlfs/hlfs/segment"
	"github.com/stretchr/testify/require"
)

// diffModel is Diff's answer from two flat models, one class per byte.
func diffModel(a, b flatMap) []Change {
	out := make([]Change, len(a))
	for i := range a {
		switch {
		case a[i] == b[i]:
			out[i] = Same
		case b[i] < 0:
			out[i] = ChangedZero
		default:
			out[i] = ChangedData
		}
	}
	return out
}

// TestDiffProperty compares Diff with the flat model over maps that share
// history (b is a clone of a, then changed), including run extents
// (sequential records of one segment, joined by SetMerging, which b may
// extend after the clone), redirects of whole records applied to both
// (what the cleaner does), and small windows so that window boundaries
// fall everywhere.
func TestDiffProperty(t *testing.T) {
	const size = 8192
	rng := rand.New(rand.NewSource(7))
	seq := uint32(1)
	var run struct {
		seq          uint32
		logEnd, next int64
	}
	runs := 0
	write := func(m *Map, f flatMap) {
		off := rng.Int63n(size)
		n := 1 + rng.Int63n(min(size-off, 400))
		var e Extent
		switch r := rng.Intn(6); {
		case r < 2:
			m.Punch(off, n)
			f.punch(off, n)
			return
		case r < 4:
			// The next record of a run of sequential writes.
			l := []uint32{64, 64, 64, 96}[rng.Intn(4)]
			if run.seq == 0 || rng.Intn(6) == 0 || run.next+int64(l) > size {
				run.seq, run.logEnd, run.next = seq, segment.SegmentHeaderLen, rng.Int63n(size-int64(l))
				seq++
			}
			e = Extent{Off: run.next, Length: l, Seq: run.seq, PayOff: uint32(run.logEnd + segment.HeaderSize), PayLen: l, Flags: FlagBlockSums}
			run.logEnd += Stride(l)
			run.next += int64(l)
		default:
			e = Extent{Off: off, Length: uint32(n), Seq: seq, PayLen: uint32(n)}
			seq++
		}
		m.SetMerging(e, nil)
		f.set(e)
	}
	countRuns := func(m *Map) {
		m.Ascend(func(e Extent) bool {
			if e.Run() {
				runs++
			}
			return true
		})
	}
	for round := 0; round < 40; round++ {
		a, fa := New(), make(flatMap, size)
		fa.punch(0, size)
		for range 60 {
			write(a, fa)
		}
		b := a.Clone()
		fb := append(flatMap(nil), fa...)
		for range rng.Intn(30) {
			write(b, fb)
		}
		countRuns(a)
		countRuns(b)
		if round%2 == 0 { // a's records moved: both maps point at copies
			moveAll(a, b, &seq)
			fa, fb = flatten(a, size), flatten(b, size)
		}
		want := diffModel(fa, fb)
		for q := 0; q < 20; q++ {
			off := rng.Int63n(size)
			n := 1 + rng.Int63n(size-off)
			got := make([]Change, 0, n)
			pos := off
			var last Change = 255
			Diff(a, b, off, n, func(o, k int64, c Change) bool {
				require.Equal(t, pos, o, "runs must be consecutive")
				require.Positive(t, k)
				require.NotEqual(t, last, c, "adjacent runs of one class must merge")
				last = c
				for range k {
					got = append(got, c)
				}
				pos += k
				return true
			})
			require.Equal(t, off+n, pos, "runs must cover the range")
			require.Equal(t, want[off:off+n], got, "round %d range %d+%d", round, off, n)
		}
	}
	require.Greater(t, runs, 20, "the maps must hold run extents")
}

// moveAll redirects every record a names to a new copy record, in a and b
// alike, as the cleaner does for all maps of a volume. The copies are
// consecutive records of one segment, so copies of records that a or b map
// end to end join into run extents, differently in a and b where b
// overwrote some of them.
func moveAll(a, b *Map, seq *uint32) {
	type id struct{ seq, payOff uint32 }
	var recs []Extent
	seen := map[id]bool{}
	a.Ascend(func(e Extent) bool {
		e.Records(func(r Extent) bool {
			if k := (id{r.Seq, r.PayOff}); !seen[k] {
				seen[k] = true
				recs = append(recs, r)
			}
			return true
		})
		return true
	})
	logEnd := int64(segment.SegmentHeaderLen)
	for _, r := range recs {
		to := Extent{Seq: *seq, PayOff: uint32(logEnd + segment.HeaderSize), PayLen: r.PayLen, Flags: FlagBlockSums | FlagCopy}
		logEnd += Stride(r.PayLen)
		a.Redirect(r, r.Base(), 0, r.PayLen, to, r.Base(), nil)
		b.Redirect(r, r.Base(), 0, r.PayLen, to, r.Base(), nil)
	}
	*seq++
}

// TestDiffStops checks that fn returning false ends the walk at once.
func TestDiffStops(t *testing.T) {
	a, b := New(), New()
	for i := int64(0); i < 2000; i++ {
		b.Set(Extent{Off: i * 8, Length: 4, Seq: uint32(i + 1), PayLen: 4})
	}
	calls := 0
	Diff(a, b, 0, 16000, func(int64, int64, Change) bool {
		calls++
		return calls < 5
	})
	require.Equal(t, 5, calls)
}

// BenchmarkDiff measures a walk over two maps of 1M extents that differ in
// 1% of them.
func BenchmarkDiff(b *testing.B) {
	const n = 1 << 20
	a := New()
	for i := int64(0); i < n; i++ {
		a.Set(Extent{Off: i * 4096, Length: 4096, Seq: uint32(i + 1), PayLen: 4096})
	}
	m := a.Clone()
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < n/100; i++ {
		off := rng.Int63n(n) * 4096
		m.Set(Extent{Off: off, Length: 4096, Seq: uint32(n + i + 1), PayLen: 4096})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		changed := int64(0)
		Diff(a, m, 0, n*4096, func(_, k int64, c Change) bool {
			if c != Same {
				changed += k
			}
			return true
		})
		if changed == 0 {
			b.Fatal("no change found")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/extent")
}
