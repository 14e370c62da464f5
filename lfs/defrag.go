package lfs

import (
	"time"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/segment"
	"github.com/hlfs/hlfs/snapshot"
)

// Defragmentation (docs/design.md §3): data written by scattered small
// writes sits in one record per write, all over the log, so the live map
// holds one extent per write and a sequential read gathers many records.
// The defragmenter rewrites such data in volume address order: it walks
// the live map in windows of defragWindow bytes, and a window whose mapped
// bytes take at least defragMinGain more extents than they have stretches
// (maximal runs of mapped bytes) is read through the map (verified, as any
// read) and appended as copy records of defragRecord bytes, cut at
// absolute multiples of defragRecord, so consecutive windows continue each
// other's run; every map that names the old bytes is pointed at the
// copies, exactly as the cleaner does it (applyCopies), so the window ends
// as one run extent per stretch and its old records become garbage for
// the cleaner. It is bounded by GCOptions.Defrag bytes and runs at
// GCOptions.Rate.
const (
	defragWindow  = 1 << 20
	defragRecord  = segment.MaxDataLen
	defragMinGain = 4
)

// DefragAll, as GCOptions.Defrag, lets a run rewrite every fragmented
// window once.
const DefragAll = -1

// defragCandidate is a window worth rewriting.
type defragCandidate struct {
	off    int64 // window start
	mapped int64
}

// fragmentedWindows returns the windows of m worth rewriting, in address
// order. Windows with bytes of another branch (a clone's source) are left:
// they are the source's to move. Pure.
func fragmentedWindows(m *blockmap.Map, own uint16, size int64) []defragCandidate {
	var out []defragCandidate
	pos := int64(0)
	for pos < size {
		// The first extent at or after pos decides the next window.
		next, found := int64(0), false
		m.Visit(pos, size-pos, func(e blockmap.Extent) bool {
			next, found = e.Off, true
			return false
		})
		if !found {
			break
		}
		w := next - next%defragWindow
		extents, stretches, mapped := 0, 0, int64(0)
		prevEnd, foreign := int64(-1), false
		m.Visit(w, min(defragWindow, size-w), func(e blockmap.Extent) bool {
			if e.Branch != own {
				foreign = true
				return false
			}
			extents++
			if e.Off != prevEnd {
				stretches++
			}
			prevEnd, mapped = e.End(), mapped+int64(e.Length)
			return true
		})
		if !foreign && extents-stretches >= defragMinGain {
			out = append(out, defragCandidate{off: w, mapped: mapped})
		}
		pos = w + defragWindow
	}
	return out
}

// FragmentedBytes are the mapped bytes of the live map in windows the
// defragmenter would rewrite (hlfs du).
func (v *Volume) fragmentedBytes(live *blockmap.Map) int64 {
	var n int64
	for _, c := range fragmentedWindows(live, v.lin.Branch, v.sb.size) {
		n += c.mapped
	}
	return n
}

// defragPass rewrites fragmented windows of the live map in address order,
// at most opts.Defrag bytes (DefragAll: every such window once). gcMu is
// held. It does nothing while a snapshot has clones: their maps point at
// the bytes it would move (the cleaner leaves those alone too).
func (v *Volume) defragPass(opts GCOptions, stop <-chan struct{}) (GCStats, error) {
	var stats GCStats
	if opts.Defrag == 0 {
		return stats, nil
	}
	pinned, err := v.snapshotsWithClones()
	if err != nil || len(pinned) > 0 {
		return stats, err
	}
	v.mu.Lock() // Clone writes to the tree it copies
	live := v.mu.m.Clone()
	v.mu.Unlock()
	wins := fragmentedWindows(live, v.lin.Branch, v.sb.size)
	budget := opts.Defrag
	if budget < 0 {
		budget = 1 << 62
	}
	cache := map[snapshot.ID]*blockmap.Map{}
	start := time.Now()
	buf := make([]byte, defragWindow)
	for _, w := range wins {
		if budget <= 0 || isClosed(stop) {
			break
		}
		n, err := v.defragWindow(live, w.off, buf, cache)
		if IsCorruption(err) {
			// A damaged block stays where it is (reads of it fail, scrub
			// names it); the rest of the volume is still defragmented.
			v.log.Warn("defragmentation skips a window holding damaged data", "offset", w.off, "err", err)
			continue
		}
		if err != nil {
			return stats, err
		}
		stats.DefragBytes += n
		stats.DefragWindows++
		budget -= n
		if opts.Rate > 0 {
			if want := time.Duration(float64(stats.DefragBytes) / float64(opts.Rate) * float64(time.Second)); want > time.Since(start) {
				select {
				case <-time.After(want - time.Since(start)):
				case <-stop:
				}
			}
		}
	}
	return stats, nil
}

// defragWindow rewrites the window at off as live (a copy of the live map
// taken before the pass) maps it, and returns the bytes copied.
func (v *Volume) defragWindow(live *blockmap.Map, off int64, buf []byte, cache map[snapshot.ID]*blockmap.Map) (int64, error) {
	end := min(off+defragWindow, v.sb.size)
	// The window's bytes record by record. Records never change, so what
	// is read is what those records hold whatever clients write meanwhile;
	// applyCopies redirects only what a map still names.
	var pieces []blockmap.Extent
	live.Visit(off, end-off, func(e blockmap.Extent) bool {
		e.Records(func(r blockmap.Extent) bool {
			pieces = append(pieces, r)
			return true
		})
		return true
	})
	v.readGate.RLock()
	for _, r := range pieces {
		if err := v.readExtent(buf[r.Off-off:r.End()-off], r); err != nil {
			v.readGate.RUnlock()
			return 0, err
		}
	}
	v.readGate.RUnlock()
	b := &recordBatch{}
	var olds [][]recRange
	var copied int64
	for i := 0; i < len(pieces); {
		// A stretch: pieces that continue each other in the volume.
		j := i + 1
		for j < len(pieces) && pieces[j].Off == pieces[j-1].End() {
			j++
		}
		lo, hi := pieces[i].Off, pieces[j-1].End()
		for a := lo; a < hi; {
			z := min(hi, (a/defragRecord+1)*defragRecord)
			b.add(segment.Header{Type: segment.TypeCopy, Addr: uint64(a), LogicalLen: uint32(z - a)}, buf[a-off:z-off])
			var rs []recRange
			for _, r := range pieces[i:j] {
				if r.End() <= a || r.Off >= z {
					continue
				}
				c := blockmap.Clip(r, a, z)
				rs = append(rs, recRange{seq: c.Seq, payOff: c.PayOff, base: c.Base(), ext: c,
					lo: uint32(c.Off - c.Base()), hi: uint32(c.End() - c.Base())})
			}
			olds = append(olds, rs)
			copied += z - a
			a = z
		}
		i = j
	}
	if len(b.lens) == 0 {
		return 0, nil
	}
	return copied, v.applyCopies(b, olds, cache)
}
