package blockmap

import (
	"math/rand"
	"testing"

	"github.com/hlfs/hlfs/segment"
	"github.com/stretchr/testify/require"
)

// physByte names one byte of a record: the record's payload offset and
// the byte's offset in its data (segment 1 throughout).
type physByte struct{ payOff, dataOff uint32 }

// physModel maps each volume byte to the record byte it reads (zero:
// hole).
type physModel []physByte

func (p physModel) of(m *Map) physModel {
	out := make(physModel, len(p))
	m.Ascend(func(e Extent) bool {
		e.Records(func(r Extent) bool {
			if r.Run() || r.Skip+r.Length > r.PayLen {
				panic("Records returned a run")
			}
			for i := int64(0); i < int64(r.Length); i++ {
				out[r.Off+i] = physByte{r.PayOff, r.Skip + uint32(i)}
			}
			return true
		})
		return true
	})
	return out
}

// TestRunExtentsProperty appends records of a few sizes to one segment,
// often right after the previous one in the volume (sequential writes),
// with punches, clones and redirects of record ranges between, and
// compares every map with a byte-level model of which record byte each
// volume byte reads; sequential appends must make one extent.
func TestRunExtentsProperty(t *testing.T) {
	const size = 256 << 10
	rng := rand.New(rand.NewSource(7))
	m := New()
	model := make(physModel, size)
	var clones []*Map
	var cloneModels []physModel
	logEnd := int64(segment.SegmentHeaderLen)
	nextAddr := int64(0)
	appendRec := func(addr int64, l uint32, flags uint8) Extent {
		e := Extent{Off: addr, Length: l, Seq: 1, PayOff: uint32(logEnd + segment.HeaderSize), PayLen: l, Flags: flags}
		logEnd += Stride(l)
		return e
	}
	sizes := []uint32{512, 4096, 8192, 65536}
	for i := 0; i < 2500; i++ {
		switch r := rng.Intn(20); {
		case r == 0:
			clones = append(clones, m.Clone())
			cloneModels = append(cloneModels, append(physModel(nil), model...))
		case r < 4:
			off := rng.Int63n(size)
			n := 1 + rng.Int63n(min(size-off, 20000))
			m.Punch(off, n)
			clear(model[off : off+n])
			logEnd += 40 // a hole record between: breaks runs
		case r < 6:
			// Redirect part of one record to a new copy record.
			off := rng.Int63n(size)
			e, ok := m.Floor(off)
			if !ok || e.End() <= off {
				break
			}
			var rec Extent
			e.Records(func(x Extent) bool { rec = x; return x.End() <= off })
			lo := uint32(rng.Int63n(int64(rec.Length)))
			hi := lo + 1 + uint32(rng.Int63n(int64(rec.Length-lo)))
			dlo, dhi := rec.Skip+lo, rec.Skip+hi
			to := appendRec(0, dhi-dlo, FlagBlockSums|FlagCopy)
			m.Redirect(rec, rec.Base(), dlo, dhi, to, rec.Base()+int64(dlo), nil)
			for x := rec.Base() + int64(dlo); x < rec.Base()+int64(dhi); x++ {
				model[x] = physByte{to.PayOff, uint32(x - rec.Base() - int64(dlo))}
			}
		default:
			l := sizes[rng.Intn(len(sizes))]
			if rng.Intn(3) == 0 {
				l = sizes[1] // mostly one size, so runs grow
			}
			addr := nextAddr
			if rng.Intn(5) == 0 || addr+int64(l) > size {
				addr = rng.Int63n(size - int64(l))
			}
			flags := FlagBlockSums
			if rng.Intn(15) == 0 {
				flags |= segment.FlagSnappy
			}
			e := appendRec(addr, l, flags)
			m.SetMerging(e, nil)
			for x := int64(0); x < int64(l); x++ {
				model[addr+x] = physByte{e.PayOff, uint32(x)}
			}
			nextAddr = addr + int64(l)
		}
		if i%50 == 0 {
			requireSamePhys(t, model, model.of(m), i)
			require.Empty(t, m.Problems(size), "step %d", i)
		}
	}
	requireSamePhys(t, model, model.of(m), -1)
	for c := range clones {
		requireSamePhys(t, cloneModels[c], model.of(clones[c]), -2-c)
	}
	// Adjacent extents that continue each other are always joined.
	var prev Extent
	have := false
	m.Ascend(func(e Extent) bool {
		if have {
			_, joinable := Adjoin(prev, e)
			require.False(t, joinable, "%v and %v should be one extent", prev, e)
		}
		prev, have = e, true
		return true
	})
}

// requireSamePhys compares two models without reflection (fast), naming
// the first difference.
func requireSamePhys(t *testing.T, want, got physModel, step int) {
	t.Helper()
	for i := range want {
		if want[i] != got[i] {
			t.Fatalf("step %d: volume byte %d reads %+v, want %+v", step, i, got[i], want[i])
		}
	}
}

// TestSequentialAppendsMakeOneExtent: 4 KiB records appended one after the
// other, each right after the previous in the volume, are one extent.
func TestSequentialAppendsMakeOneExtent(t *testing.T) {
	m := New()
	payOff := int64(segment.SegmentHeaderLen + segment.HeaderSize)
	for i := int64(0); i < 8192; i++ {
		m.SetMerging(Extent{Off: i * 4096, Length: 4096, Seq: 1, PayOff: uint32(payOff), PayLen: 4096, Flags: FlagBlockSums}, nil)
		payOff += Stride(4096)
	}
	require.Equal(t, 1, m.Len())
	e, _ := m.Floor(0)
	require.True(t, e.Run())
	require.Equal(t, uint32(8192*4096), e.Length)
	// Overwriting the middle splits it in two runs that still read right.
	m.SetMerging(Extent{Off: 4096*100 + 10, Length: 100, Seq: 2, PayOff: 100, PayLen: 100, Flags: FlagBlockSums}, nil)
	require.Equal(t, 3, m.Len())
	right, _ := m.Floor(4096*100 + 110)
	p, d := right.RecordAt(right.Off)
	require.Equal(t, uint32(segment.SegmentHeaderLen+segment.HeaderSize)+uint32(100*Stride(4096)), p)
	require.Equal(t, uint32(110), d)
	// A record of another layout, or not right after, does not join.
	m2 := New()
	m2.SetMerging(Extent{Off: 0, Length: 4096, Seq: 1, PayOff: 112, PayLen: 4096, Flags: FlagBlockSums}, nil)
	m2.SetMerging(Extent{Off: 4096, Length: 4096, Seq: 1, PayOff: 112 + uint32(Stride(4096)) + 40, PayLen: 4096, Flags: FlagBlockSums}, nil)
	m2.SetMerging(Extent{Off: 8192, Length: 4096, Seq: 1, PayOff: 112 + 2*uint32(Stride(4096)) + 40, PayLen: 4096, Flags: FlagBlockSums | FlagCopy}, nil)
	require.Equal(t, 3, m2.Len())
}
