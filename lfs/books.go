package lfs

import (
	"cmp"
	"maps"
	"slices"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/segment"
	"github.com/hlfs/hlfs/snapshot"
)

// books counts the live bytes of each segment of the volume's own branch:
// the distinct record bytes that the live map or any snapshot's map names
// (docs/format.md). The cleaner picks segments by them and `hlfs du` reports
// them; fsck recounts them from scratch and compares.
//
// Writes keep the books exact without looking at snapshot maps, by log
// position: a snapshot holds a record's bytes only if it was taken after the
// record was written, so when the live map lets go of bytes of a record
// that is newer than every snapshot they are garbage; when a snapshot taken
// after the record and after the last rollback exists, that snapshot still
// holds them (the live map held them without a break since). Anything else
// (bytes moved by the cleaner while snapshots exist, a snapshot delete, a
// rollback) leaves the bytes counted and the books inexact until the next
// recount, which walks every map. Inexact books only ever overcount.
type books struct {
	own   uint16
	live  map[uint64]int64
	exact bool

	newestSnap segment.Pos // meta record of the newest snapshot; zero when none
	anySnap    bool
	rollback   segment.Pos // the last rollback's meta record; zero when none

	// recount is not nil while a recount runs: the changes since its cut.
	recount *recountDelta
}

type recountDelta struct {
	live    map[uint64]int64
	inexact bool
}

func newBooks(own uint16) *books {
	return &books{own: own, live: make(map[uint64]int64), exact: true}
}

// loadedBooks returns books as a checkpoint recorded them (a version 1
// checkpoint has none: inexact until a recount) for snapshot table t.
func loadedBooks(own uint16, c checkpoint, t *snapshot.Tree) *books {
	b := newBooks(own)
	if c.live != nil {
		b.live = c.live
	}
	b.exact = c.exact
	b.snapshotsChanged(t, 0)
	return b
}

func (b *books) add(seq uint64, n int64) {
	if n == 0 {
		return
	}
	if v := b.live[seq] + n; v == 0 {
		delete(b.live, seq)
	} else {
		b.live[seq] = v
	}
	if b.recount != nil {
		b.recount.live[seq] += n
	}
}

func (b *books) inexact() {
	b.exact = false
	if b.recount != nil {
		b.recount.inexact = true
	}
}

// added counts bytes a write put into the live map.
func (b *books) added(e blockmap.Extent) {
	if e.Branch == b.own {
		b.add(uint64(e.Seq), int64(e.Length))
	}
}

// removed accounts for bytes the live map let go of.
func (b *books) removed(e blockmap.Extent) {
	if e.Branch != b.own {
		return // an ancestor's bytes: its own books
	}
	// Invariant: the records of a run are consecutive in one segment with
	// no record between them, so no snapshot or rollback record lies among
	// them: any of them compares with the snapshots as the first does.
	payOff, _ := e.RecordAt(e.Off)
	rec := segment.Pos{Seq: uint64(e.Seq), Off: int64(payOff) - segment.HeaderSize}
	switch {
	case !b.anySnap:
		b.add(uint64(e.Seq), -int64(e.Length))
	case e.Flags&blockmap.FlagCopy != 0:
		// A copy is newer than the snapshots that may hold its bytes.
		b.inexact()
	case !rec.Less(b.newestSnap):
		b.add(uint64(e.Seq), -int64(e.Length)) // no snapshot is newer than the record
	case b.rollback.Less(b.newestSnap):
		// The newest snapshot came after the record and after the last
		// rollback, so it holds these bytes.
	default:
		b.inexact()
	}
}

// snapshotsChanged records the snapshot tree after a create, delete or
// rollback (op; 0 when loaded). Creating a snapshot changes no count: it
// holds only bytes the live map holds.
func (b *books) snapshotsChanged(t *snapshot.Tree, op snapshot.Kind) {
	b.anySnap, b.newestSnap, b.rollback = false, segment.Pos{}, t.LastRollback()
	for _, s := range t.Nodes() {
		if !b.anySnap || b.newestSnap.Less(s.Pos) {
			b.anySnap, b.newestSnap = true, s.Pos
		}
	}
	switch op {
	case snapshot.Delete, snapshot.Rollback:
		b.inexact()
	}
}

// copyCounts returns a copy of the counts.
func (b *books) copyCounts() map[uint64]int64 { return maps.Clone(b.live) }

// total sums the live bytes.
func (b *books) total() int64 {
	var n int64
	for _, v := range b.live {
		n += v
	}
	return n
}

// startRecount begins collecting changes made after a recount's cut.
func (b *books) startRecount() { b.recount = &recountDelta{live: make(map[uint64]int64)} }

// finishRecount installs counts made from the maps at the cut plus the
// changes since; the books are exact unless something inexact happened since.
func (b *books) finishRecount(counted map[uint64]int64) {
	d := b.recount
	b.recount = nil
	if d == nil {
		return
	}
	for seq, n := range d.live {
		counted[seq] += n
	}
	for seq, n := range counted {
		if n == 0 {
			delete(counted, seq)
		}
	}
	b.live = counted
	b.exact = !d.inexact
}

// recRange is a range [lo, hi) of the bytes of one record, which starts at
// volume offset base; ext is a single-record extent naming the record.
type recRange struct {
	seq    uint32
	payOff uint32
	lo, hi uint32
	base   int64
	ext    blockmap.Extent // an extent naming the record (its identity and flags)
}

// countLive counts, per own segment, the distinct record bytes that live or
// any of snaps names.
func countLive(own uint16, live *blockmap.Map, snaps []*blockmap.Map) map[uint64]int64 {
	counts := make(map[uint64]int64)
	// The live map names each byte once.
	if live != nil {
		live.Ascend(func(e blockmap.Extent) bool {
			if e.Branch == own {
				counts[uint64(e.Seq)] += int64(e.Length)
			}
			return true
		})
	}
	// Snapshot bytes the live map does not name the same way, deduplicated.
	var extra []recRange
	for _, m := range snaps {
		m.Ascend(func(e blockmap.Extent) bool {
			if e.Branch != own {
				return true
			}
			extra = appendNotIn(extra, e, live)
			return true
		})
	}
	for _, r := range mergeRanges(extra) {
		counts[uint64(r.seq)] += int64(r.hi - r.lo)
	}
	return counts
}

// appendNotIn appends, record by record, the parts of e that m does not
// name as the same bytes of the same record (blockmap.SameBytes).
func appendNotIn(out []recRange, e blockmap.Extent, m *blockmap.Map) []recRange {
	e.Records(func(r blockmap.Extent) bool {
		add := func(lo, hi int64) {
			if hi > lo {
				out = append(out, recRange{seq: r.Seq, payOff: r.PayOff, base: r.Base(), ext: r,
					lo: uint32(lo - r.Base()), hi: uint32(hi - r.Base())})
			}
		}
		if m == nil {
			add(r.Off, r.End())
			return true
		}
		pos := r.Off
		m.Visit(r.Off, int64(r.Length), func(o blockmap.Extent) bool {
			if blockmap.SameBytes(o, r, o.Off) {
				add(pos, o.Off)
				pos = o.End()
			}
			return true
		})
		add(pos, r.End())
		return true
	})
	return out
}

// mergeRanges sorts ranges by record and merges overlapping and touching
// ranges of the same record.
func mergeRanges(rs []recRange) []recRange {
	slices.SortFunc(rs, func(a, b recRange) int {
		switch {
		case a.seq != b.seq:
			return cmp.Compare(a.seq, b.seq)
		case a.payOff != b.payOff:
			return cmp.Compare(a.payOff, b.payOff)
		default:
			return cmp.Compare(a.lo, b.lo)
		}
	})
	out := rs[:0]
	for _, r := range rs {
		if k := len(out) - 1; k >= 0 && out[k].seq == r.seq && out[k].payOff == r.payOff && r.lo <= out[k].hi {
			out[k].hi = max(out[k].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// rangesIn collects the merged live ranges of the records in the segments
// of set that any of maps names.
func rangesIn(own uint16, maps []*blockmap.Map, set map[uint64]bool) []recRange {
	var rs []recRange
	for _, m := range maps {
		m.Ascend(func(e blockmap.Extent) bool {
			if e.Branch == own && set[uint64(e.Seq)] {
				rs = appendNotIn(rs, e, nil)
			}
			return true
		})
	}
	return mergeRanges(rs)
}
