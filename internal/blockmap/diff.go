package blockmap

// Change classifies a run of volume bytes when two maps of one volume are
// compared (Diff).
type Change uint8

const (
	// Same: both maps name the same byte of the same record at every offset
	// of the run, or both have a hole there.
	Same Change = iota
	// ChangedData: the maps differ and the newer map names data here.
	ChangedData
	// ChangedZero: the maps differ and the newer map has a hole here (the
	// run reads as zeros: trimmed or zeroed).
	ChangedZero
)

// diffWindow bounds the extents of each map Diff holds at once.
const diffWindow = 256

// Diff compares map a (the older point) with map b (the newer) over
// [off, off+length) and calls fn, in order, for consecutive runs that cover
// the range exactly, each with its class; adjacent runs of one class are
// merged. fn returns false to stop.
//
// A byte is the same in both maps when both map it to the same byte of the
// same record (SameBytes: branch, seq, payload offset and the offset in the
// record's data, whichever run extent names it), or when both have a hole
// there. Records are immutable, so equal identity means equal content;
// the converse does not hold (the same bytes written again are a new
// record and count as changed). Maps whose data the cleaner moved compare
// as before, as long as both were redirected to the same copy records
// (lfs redirects the live map and every snapshot map of a volume together).
//
// The cost is O(extents of a and b in the range), with at most diffWindow
// extents of each held at once; nothing is allocated per extent.
func Diff(a, b *Map, off, length int64, fn func(off, n int64, c Change) bool) {
	end := off + length
	var bufA, bufB [diffWindow]Extent
	var run struct {
		off, n int64
		c      Change
	}
	emit := func(o, n int64, c Change) bool {
		if run.n > 0 && run.c == c {
			run.n += n
			return true
		}
		if run.n > 0 && !fn(run.off, run.n, run.c) {
			return false
		}
		run.off, run.n, run.c = o, n, c
		return true
	}
	for pos := off; pos < end; {
		ea, limA := window(a, pos, end, bufA[:0])
		eb, limB := window(b, pos, end, bufB[:0])
		lim := min(limA, limB)
		i, j := 0, 0
		for p := pos; p < lim; {
			for i < len(ea) && ea[i].End() <= p {
				i++
			}
			for j < len(eb) && eb[j].End() <= p {
				j++
			}
			next := lim
			var xa, xb *Extent
			if i < len(ea) {
				if ea[i].Off <= p {
					xa, next = &ea[i], min(next, ea[i].End())
				} else {
					next = min(next, ea[i].Off)
				}
			}
			if j < len(eb) {
				if eb[j].Off <= p {
					xb, next = &eb[j], min(next, eb[j].End())
				} else {
					next = min(next, eb[j].Off)
				}
			}
			if !emit(p, next-p, classify(xa, xb, p)) {
				return
			}
			p = next
		}
		pos = lim
	}
	if run.n > 0 {
		fn(run.off, run.n, run.c)
	}
}

// classify compares the extents (nil: a hole) two maps have from offset p
// on; both cover p if not nil. Extents that agree at one offset agree on
// every offset both cover (SameBytes).
func classify(a, b *Extent, p int64) Change {
	switch {
	case a == nil && b == nil:
		return Same
	case b == nil:
		return ChangedZero
	case a != nil && SameBytes(*a, *b, p):
		return Same
	default:
		return ChangedData
	}
}

// window collects, into buf, the extents of m that overlap [pos, end),
// clipped to it, at most len(buf's capacity) of them. It returns them and
// the offset up to which they describe m completely: end, or the end of the
// last one collected when the window filled.
func window(m *Map, pos, end int64, buf []Extent) ([]Extent, int64) {
	full := false
	m.Visit(pos, end-pos, func(e Extent) bool {
		buf = append(buf, e)
		full = len(buf) == cap(buf)
		return !full
	})
	if full {
		return buf, buf[len(buf)-1].End()
	}
	return buf, end
}
