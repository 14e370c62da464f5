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
//
// A run extent (FlagRun) names a run of records instead: consecutive
// records of segment Seq, each an uncompressed record with block checksums
// holding PayLen bytes, with nothing between them, the first one's payload
// at PayOff. The run's data is the records' data end to end: data byte j is
// byte j%PayLen of record j/PayLen, whose payload starts at
// PayOff + (j/PayLen)*Stride(PayLen). The extent's first byte is run byte
// Skip, so Skip+Length may exceed PayLen. Sequential writes append records
// that extend the run (Map.SetMerging), so they cost one extent, not one
// per record.
//
// Two extents name the same bytes when they map a volume offset to the
// same byte of the same record (SameBytes), whichever run they name it
// through: code that needs records (reads, the books, the cleaner, scrub,
// fsck) splits an extent into its records (Records).
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
	// FlagRun marks a run extent: it may span consecutive records of
	// PayLen bytes each (see Extent). Only with FlagBlockSums and without
	// compression. Checkpoint version 4.
	FlagRun uint8 = 8
	// KnownFlags are every flag bit an extent may carry.
	KnownFlags = segment.FlagSnappy | FlagCopy | FlagBlockSums | FlagRun
)

// Stride is the distance between the payloads of two consecutive records
// of a run whose records hold payLen bytes: a header, the payload and its
// block checksums.
func Stride(payLen uint32) int64 {
	return segment.HeaderSize + int64(payLen) + int64(segment.BlockSumsLen(payLen))
}

// Run reports whether e is a run extent.
func (e Extent) Run() bool { return e.Flags&FlagRun != 0 }

// RecordAt returns where the byte e maps volume offset x to (x within e):
// the payload offset of the record holding it and the byte's offset in
// that record's (decompressed) data.
func (e Extent) RecordAt(x int64) (payOff uint32, dataOff uint32) {
	j := x - e.Base()
	if !e.Run() {
		return e.PayOff, uint32(j)
	}
	k := j / int64(e.PayLen)
	return uint32(int64(e.PayOff) + k*Stride(e.PayLen)), uint32(j % int64(e.PayLen))
}

// SameBytes reports whether e and o map volume offset x (inside both) to
// the same byte of the same record. Two extents that agree at one offset
// agree on every offset both cover.
func SameBytes(e, o Extent, x int64) bool {
	if e.Branch != o.Branch || e.Seq != o.Seq || e.Snappy() != o.Snappy() {
		return false
	}
	ep, ed := e.RecordAt(x)
	op, od := o.RecordAt(x)
	return ep == op && ed == od
}

// Records calls fn, in order, with the part of e in each record it names,
// as a single-record extent (no FlagRun; PayOff is that record's, Skip the
// offset in its data). A single-record extent is its own only part. fn
// returns false to stop.
func (e Extent) Records(fn func(r Extent) bool) {
	if !e.Run() {
		fn(e)
		return
	}
	for off := e.Off; off < e.End(); {
		payOff, d := e.RecordAt(off)
		n := min(int64(e.PayLen-d), e.End()-off)
		r := e
		r.Flags &^= FlagRun
		r.Off, r.Length, r.PayOff, r.Skip = off, uint32(n), payOff, d
		if !fn(r) {
			return
		}
		off += n
	}
}

// runnable reports whether e's records may form a run.
func (e Extent) runnable() bool {
	return e.BlockSums() && !e.Snappy() && e.PayLen > 0
}

// Adjoin returns a and b as one extent when b continues a both in the
// volume and in the log: b starts where a ends, and b's first byte is the
// byte of the run that follows a's last byte (the next byte of the same
// record, or the first byte of the record right after it in the segment).
func Adjoin(a, b Extent) (Extent, bool) {
	if a.End() != b.Off || a.Branch != b.Branch || a.Seq != b.Seq || a.Flags&^FlagRun != b.Flags&^FlagRun ||
		!a.runnable() || a.PayLen != b.PayLen || uint64(a.Length)+uint64(b.Length) > 1<<31 {
		return Extent{}, false
	}
	j := int64(a.Skip) + int64(a.Length) // run byte after a's last
	k := j / int64(a.PayLen)
	want, wantD := uint32(int64(a.PayOff)+k*Stride(a.PayLen)), uint32(j%int64(a.PayLen))
	if p, d := b.RecordAt(b.Off); p != want || d != wantD {
		return Extent{}, false
	}
	a.Length += b.Length
	if (int64(a.Skip)+int64(a.Length)-1)/int64(a.PayLen) > 0 {
		a.Flags |= FlagRun
	}
	return a, true
}

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

// End is the volume offset after the extent's last byte.
func (e Extent) End() int64 { return e.Off + int64(e.Length) }

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

// SetMerging is SetFn, then joins e with the extents before and after it
// when they continue each other in the volume and in the log (Adjoin):
// sequential writes of adjacent records make one run extent. Byte counts
// are unchanged, so removed sees what SetFn would show it.
func (m *Map) SetMerging(e Extent, removed func(Extent)) {
	m.SetFn(e, removed)
	m.mergeAround(e)
}

// mergeAround joins extent e, which is in m, with its neighbours where
// Adjoin allows.
func (m *Map) mergeAround(e Extent) {
	if e.Off > 0 {
		if prev, ok := m.Floor(e.Off - 1); ok && prev.End() == e.Off {
			if j, ok := Adjoin(prev, e); ok {
				m.t.Delete(e)
				m.t.ReplaceOrInsert(j)
				e = j
			}
		}
	}
	if next, ok := m.t.Get(Extent{Off: e.End()}); ok {
		if j, ok := Adjoin(e, next); ok {
			m.t.Delete(next)
			m.t.ReplaceOrInsert(j)
		}
	}
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

// Redirect points the bytes that extents of m map to data bytes [lo, hi)
// of record rec (by its location: branch, seq, payOff; a single-record
// extent naming it), whose data byte 0 is at volume offset base, at the
// same bytes of record to instead, whose data byte 0 is at volume offset
// toBase. Parts of extents outside those bytes, and extents that map the
// range elsewhere, are left alone; an extent is split where needed. The
// redirected pieces are joined with their neighbours where they continue
// each other (a run of copy records). It returns the volume ranges it
// redirected, appended to moved.
func (m *Map) Redirect(rec Extent, base int64, lo, hi uint32, to Extent, toBase int64, moved []Span) []Span {
	start, end := base+int64(lo), base+int64(hi)
	var hits []Extent
	m.Visit(start, end-start, func(e Extent) bool {
		if p, d := e.RecordAt(e.Off); e.Branch == rec.Branch && e.Seq == rec.Seq && e.Snappy() == rec.Snappy() &&
			p == rec.PayOff && int64(d) == e.Off-base {
			hits = append(hits, e)
		}
		return true
	})
	var made []Extent
	for _, e := range hits {
		whole, ok := m.Floor(e.Off)
		if !ok || whole.End() < e.End() {
			continue // cannot happen: e is a clip of the extent holding e.Off
		}
		m.t.Delete(whole)
		if whole.Off < e.Off {
			left := whole
			left.Length = uint32(e.Off - whole.Off)
			m.t.ReplaceOrInsert(left)
		}
		if whole.End() > e.End() {
			m.t.ReplaceOrInsert(whole.DropFront(e.End() - whole.Off))
		}
		n := to
		n.Flags &^= FlagRun
		n.Off, n.Length, n.Skip = e.Off, e.Length, uint32(e.Off-toBase)
		m.t.ReplaceOrInsert(n)
		made = append(made, n)
		moved = append(moved, Span{e.Off, e.End()})
	}
	for _, n := range made {
		if cur, ok := m.Floor(n.Off); ok && cur.End() >= n.End() {
			m.mergeAround(cur)
		}
	}
	return moved
}

// Span is a half-open range of volume bytes.
type Span struct{ Lo, Hi int64 }

// String shows the extent for debugging: off+len@branch/seq:payOff+payLen/skip/flags.
func (e Extent) String() string {
	return fmt.Sprintf("%d+%d@%d/%d:%d+%d/%d/%x", e.Off, e.Length, e.Branch, e.Seq, e.PayOff, e.PayLen, e.Skip, e.Flags)
}
