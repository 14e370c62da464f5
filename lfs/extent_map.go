package lfs

import (
	"fmt"

	"github.com/google/btree"
	"github.com/hlfs/hlfs/segment"
)

// extent maps volume bytes [off, off+length) to bytes of a record in the log:
// the record's payload is at [payOff, payOff+payLen) of segment seq of
// branch branch (see lineage.go), and the extent's first byte is byte skip
// of the record's (decompressed) data. 32 bytes; the same fields are the
// checkpoint encoding (docs/format.md).
type extent struct {
	off    int64
	length uint32
	seq    uint32
	payOff uint32
	payLen uint32
	skip   uint32
	flags  uint8 // segment.FlagSnappy
	branch uint16
}

// flagCopy marks an extent whose record is a copy record (segment.TypeCopy);
// bit 0 of flags is segment.FlagSnappy.
const flagCopy uint8 = 2

// snappy reports whether the record's payload is compressed.
func (e extent) snappy() bool { return e.flags&segment.FlagSnappy != 0 }

// recordFlags are the flags of the record header the extent names.
func (e extent) recordFlags() uint8 { return e.flags & segment.FlagSnappy }

// recordType is the type of the record the extent names.
func (e extent) recordType() segment.Type {
	if e.flags&flagCopy != 0 {
		return segment.TypeCopy
	}
	return segment.TypeData
}

// base is the volume offset of the record's first byte.
func (e extent) base() int64 { return e.off - int64(e.skip) }

// sameRecord reports whether two extents name the same record.
func (e extent) sameRecord(o extent) bool {
	return e.branch == o.branch && e.seq == o.seq && e.payOff == o.payOff
}

func (e extent) end() int64 { return e.off + int64(e.length) }

func (e extent) key() segKey { return segKey{branch: e.branch, seq: uint64(e.seq)} }

// wholeRecord reports whether the extent still covers its entire record, so
// reading it can verify the record checksum.
func (e extent) wholeRecord() bool {
	return e.skip == 0 && (e.snappy() || e.length == e.payLen)
}

// dropFront removes the first d bytes of the extent.
func (e extent) dropFront(d int64) extent {
	e.off += d
	e.length -= uint32(d)
	e.skip += uint32(d)
	return e
}

func extentLess(a, b extent) bool { return a.off < b.off }

// extentMap is the block map: non-overlapping extents ordered by offset;
// ranges without an extent are holes. It is not safe for concurrent use; the
// Volume guards it. Clone is O(1) copy-on-write.
//
// Invariant: extents never overlap, have length > 0 and lie within the volume.
type extentMap struct {
	t *btree.BTreeG[extent]
}

const mapDegree = 32

func newExtentMap() *extentMap {
	return &extentMap{t: btree.NewG[extent](mapDegree, extentLess)}
}

func (m *extentMap) clone() *extentMap { return &extentMap{t: m.t.Clone()} }

func (m *extentMap) len() int { return m.t.Len() }

// set maps e, replacing whatever was mapped under it.
func (m *extentMap) set(e extent) { m.setFn(e, nil) }

// setFn is set; removed, when not nil, sees each piece of an extent that e
// replaces.
func (m *extentMap) setFn(e extent, removed func(extent)) {
	m.punchFn(e.off, int64(e.length), removed)
	m.t.ReplaceOrInsert(e)
}

// punch unmaps [off, off+length).
func (m *extentMap) punch(off, length int64) { m.punchFn(off, length, nil) }

// punchFn is punch; removed, when not nil, sees each unmapped piece.
func (m *extentMap) punchFn(off, length int64, removed func(extent)) {
	if length <= 0 {
		return
	}
	end := off + length
	var head []extent // extents overlapping the range
	if prev, ok := m.floor(off); ok && prev.off < off && prev.end() > off {
		head = append(head, prev)
	}
	m.t.AscendRange(extent{off: off}, extent{off: end}, func(e extent) bool {
		head = append(head, e)
		return true
	})
	for _, e := range head {
		m.t.Delete(e)
		if removed != nil {
			removed(clip(e, off, end))
		}
		if e.off < off {
			left := e
			left.length = uint32(off - e.off)
			m.t.ReplaceOrInsert(left)
		}
		if e.end() > end {
			m.t.ReplaceOrInsert(e.dropFront(end - e.off))
		}
	}
}

// floor returns the extent with the greatest offset <= off.
func (m *extentMap) floor(off int64) (extent, bool) {
	var found extent
	ok := false
	m.t.DescendLessOrEqual(extent{off: off}, func(e extent) bool {
		found, ok = e, true
		return false
	})
	return found, ok
}

// visit calls fn, in order, for the parts of extents that overlap
// [off, off+length), clipped to that range. fn returns false to stop.
func (m *extentMap) visit(off, length int64, fn func(e extent) bool) {
	end := off + length
	if prev, ok := m.floor(off); ok && prev.off < off && prev.end() > off {
		if !fn(clip(prev, off, end)) {
			return
		}
	}
	m.t.AscendRange(extent{off: off}, extent{off: end}, func(e extent) bool {
		return fn(clip(e, off, end))
	})
}

func clip(e extent, off, end int64) extent {
	if e.off < off {
		e = e.dropFront(off - e.off)
	}
	if e.end() > end {
		e.length = uint32(end - e.off)
	}
	return e
}

// ascend calls fn for every extent in order until it returns false.
func (m *extentMap) ascend(fn func(e extent) bool) { m.t.Ascend(fn) }

// mappedBytes sums the lengths of all extents.
func (m *extentMap) mappedBytes() int64 {
	var n int64
	m.t.Ascend(func(e extent) bool { n += int64(e.length); return true })
	return n
}

// redirect points every extent that names bytes [lo, hi) of record old (by
// its first extent's identity: branch, seq, payOff; base is the record's
// volume offset) at the same bytes of record to instead, whose data starts
// at volume offset base+lo. Extents of old outside [lo, hi) and extents of
// other records are left alone. It returns the volume ranges it redirected.
func (m *extentMap) redirect(old extent, base int64, lo, hi uint32, to extent, moved []span) []span {
	start, end := base+int64(lo), base+int64(hi)
	var hits []extent
	m.visit(start, end-start, func(e extent) bool {
		if e.sameRecord(old) && e.base() == base {
			hits = append(hits, e)
		}
		return true
	})
	for _, e := range hits {
		// visit clips; the cleaner's ranges are unions of whole extents, so
		// a hit is a whole extent unless the map changed under a bug.
		whole, ok := m.floor(e.off)
		if !ok || whole != e {
			continue
		}
		n := to
		n.off, n.length, n.skip = e.off, e.length, uint32(e.off-start)
		m.t.ReplaceOrInsert(n)
		moved = append(moved, span{e.off, e.end()})
	}
	return moved
}

// span is a half-open range of volume bytes.
type span struct{ lo, hi int64 }

func (e extent) String() string {
	return fmt.Sprintf("%d+%d@%d/%d:%d+%d/%d/%x", e.off, e.length, e.branch, e.seq, e.payOff, e.payLen, e.skip, e.flags)
}
