// Package blockmap is the block map of a volume: non-overlapping extents,
// ordered by volume offset, each naming bytes of a record in the log. It is
// pure: no I/O, no locks. A Map is not safe for concurrent use; its owner
// (lfs.Volume) guards it. Clone is O(1) copy-on-write (google/btree), so a
// snapshot's map costs nothing until either copy changes.
//
// The 32-byte extent encoding (EncodeExtent/DecodeExtent) is the
// checkpoint's and snapshot map object's extent record: part of the format,
// never change (docs/format.md).
package blockmap

import (
	"fmt"

	"github.com/google/btree"
	"github.com/hlfs/hlfs/segment"
)

// Extent maps volume bytes [Off, Off+Length) to bytes of a record in the
// log: the record's payload is at [PayOff, PayOff+PayLen) of segment Seq of
// branch Branch (a clone's family member, lfs/lineage.go), and the extent's
// first byte is byte Skip of the record's (decompressed) data. 32 bytes; the same fields are the
// checkpoint encoding (EncodeExtent).
type Extent struct {
	Off    int64
	Length uint32
	Seq    uint32
	PayOff uint32
	PayLen uint32
	Skip   uint32
	Flags  uint8 // segment.FlagSnappy
	Branch uint16
}

// Extent flags: bit 0 is segment.FlagSnappy (the record's payload is
// compressed).
const (
	// FlagCopy marks an extent whose record is a copy record
	// (segment.TypeCopy).
	FlagCopy uint8 = 2
	// FlagBlockSums marks an extent whose record carries block checksums
	// (segment.Header.HasBlockSums): any part of it can be read verified.
	FlagBlockSums uint8 = 4
)

// FlagsOf are the flags of an extent naming the record with header h.
func FlagsOf(h segment.Header) uint8 {
	f := h.Flags & segment.FlagSnappy
	if h.Type == segment.TypeCopy {
		f |= FlagCopy
	}
	if h.HasBlockSums() {
		f |= FlagBlockSums
	}
	return f
}

// BlockSums reports whether the record carries block checksums.
func (e Extent) BlockSums() bool { return e.Flags&FlagBlockSums != 0 }

// Snappy reports whether the record's payload is compressed.
func (e Extent) Snappy() bool { return e.Flags&segment.FlagSnappy != 0 }

// RecordFlags are the flags of the record header the extent names.
func (e Extent) RecordFlags() uint8 { return e.Flags & segment.FlagSnappy }

// RecordType is the type of the record the extent names.
func (e Extent) RecordType() segment.Type {
	if e.Flags&FlagCopy != 0 {
		return segment.TypeCopy
	}
	return segment.TypeData
}

// Base is the volume offset of the record's first byte.
func (e Extent) Base() int64 { return e.Off - int64(e.Skip) }

// SameRecord reports whether two extents name the same record.
func (e Extent) SameRecord(o Extent) bool {
	return e.Branch == o.Branch && e.Seq == o.Seq && e.PayOff == o.PayOff
}

// End is the volume offset after the extent's last byte.
func (e Extent) End() int64 { return e.Off + int64(e.Length) }

// WholeRecord reports whether the extent still covers its entire record, so
// reading it can verify the record checksum.
func (e Extent) WholeRecord() bool {
	return e.Skip == 0 && (e.Snappy() || e.Length == e.PayLen)
}

// DropFront removes the first d bytes of the extent.
func (e Extent) DropFront(d int64) Extent {
	e.Off += d
	e.Length -= uint32(d)
	e.Skip += uint32(d)
	return e
}

// Less orders extents by volume offset (the B-tree's order).
func Less(a, b Extent) bool { return a.Off < b.Off }

// Map is the block map: non-overlapping extents ordered by offset;
// ranges without an extent are holes. It is not safe for concurrent use.
// Clone is O(1) copy-on-write; Clone writes to the tree it copies, so it
// needs the same exclusion as a Set.
//
// Invariant: extents never overlap, have length > 0 and lie within the volume.
type Map struct {
	t *btree.BTreeG[Extent]
}

const degree = 32

// New returns an empty map.
func New() *Map {
	return &Map{t: btree.NewG[Extent](degree, Less)}
}

// Clone returns a copy that shares nodes with m until either changes.
func (m *Map) Clone() *Map { return &Map{t: m.t.Clone()} }

// Len is the number of extents.
func (m *Map) Len() int { return m.t.Len() }

// Set maps e, replacing whatever was mapped under it.
func (m *Map) Set(e Extent) { m.SetFn(e, nil) }

// SetFn is Set; removed, when not nil, sees each piece of an extent that e
// replaces.
func (m *Map) SetFn(e Extent, removed func(Extent)) {
	m.PunchFn(e.Off, int64(e.Length), removed)
	m.t.ReplaceOrInsert(e)
}

// Punch unmaps [off, off+length).
func (m *Map) Punch(off, length int64) { m.PunchFn(off, length, nil) }

// PunchFn is Punch; removed, when not nil, sees each unmapped piece.
func (m *Map) PunchFn(off, length int64, removed func(Extent)) {
	if length <= 0 {
		return
	}
	end := off + length
	var head []Extent // extents overlapping the range
	if prev, ok := m.Floor(off); ok && prev.Off < off && prev.End() > off {
		head = append(head, prev)
	}
	m.t.AscendRange(Extent{Off: off}, Extent{Off: end}, func(e Extent) bool {
		head = append(head, e)
		return true
	})
	for _, e := range head {
		m.t.Delete(e)
		if removed != nil {
			removed(Clip(e, off, end))
		}
		if e.Off < off {
			left := e
			left.Length = uint32(off - e.Off)
			m.t.ReplaceOrInsert(left)
		}
		if e.End() > end {
			m.t.ReplaceOrInsert(e.DropFront(end - e.Off))
		}
	}
}

// Floor returns the extent with the greatest offset <= off.
func (m *Map) Floor(off int64) (Extent, bool) {
	var found Extent
	ok := false
	m.t.DescendLessOrEqual(Extent{Off: off}, func(e Extent) bool {
		found, ok = e, true
		return false
	})
	return found, ok
}

// Visit calls fn, in order, for the parts of extents that overlap
// [off, off+length), clipped to that range. fn returns false to stop.
func (m *Map) Visit(off, length int64, fn func(e Extent) bool) {
	end := off + length
	if prev, ok := m.Floor(off); ok && prev.Off < off && prev.End() > off {
		if !fn(Clip(prev, off, end)) {
			return
		}
	}
	m.t.AscendRange(Extent{Off: off}, Extent{Off: end}, func(e Extent) bool {
		return fn(Clip(e, off, end))
	})
}

// Clip returns the part of e inside [off, end); e must overlap it.
func Clip(e Extent, off, end int64) Extent {
	if e.Off < off {
		e = e.DropFront(off - e.Off)
	}
	if e.End() > end {
		e.Length = uint32(end - e.Off)
	}
	return e
}

// Ascend calls fn for every extent in order until it returns false.
func (m *Map) Ascend(fn func(e Extent) bool) { m.t.Ascend(fn) }

// MappedBytes sums the lengths of all extents.
func (m *Map) MappedBytes() int64 {
	var n int64
	m.t.Ascend(func(e Extent) bool { n += int64(e.Length); return true })
	return n
}

// Redirect points every extent that names bytes [lo, hi) of record old (by
// its first extent's identity: branch, seq, payOff; base is the record's
// volume offset) at the same bytes of record to instead, whose data starts
// at volume offset base+lo. Extents of old outside [lo, hi) and extents of
// other records are left alone. It returns the volume ranges it redirected.
func (m *Map) Redirect(old Extent, base int64, lo, hi uint32, to Extent, moved []Span) []Span {
	start, end := base+int64(lo), base+int64(hi)
	var hits []Extent
	m.Visit(start, end-start, func(e Extent) bool {
		if e.SameRecord(old) && e.Base() == base {
			hits = append(hits, e)
		}
		return true
	})
	for _, e := range hits {
		// visit clips; the cleaner's ranges are unions of whole extents, so
		// a hit is a whole extent unless the map changed under a bug.
		whole, ok := m.Floor(e.Off)
		if !ok || whole != e {
			continue
		}
		n := to
		n.Off, n.Length, n.Skip = e.Off, e.Length, uint32(e.Off-start)
		m.t.ReplaceOrInsert(n)
		moved = append(moved, Span{e.Off, e.End()})
	}
	return moved
}

// Span is a half-open range of volume bytes.
type Span struct{ Lo, Hi int64 }

// String shows the extent for debugging: off+len@branch/seq:payOff+payLen/skip/flags.
func (e Extent) String() string {
	return fmt.Sprintf("%d+%d@%d/%d:%d+%d/%d/%x", e.Off, e.Length, e.Branch, e.Seq, e.PayOff, e.PayLen, e.Skip, e.Flags)
}
