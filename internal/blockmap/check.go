package blockmap

import (
	"fmt"

	"github.com/hlfs/hlfs/segment"
)

// maxProblems bounds the problems Problems reports.
const maxProblems = 10

// Check verifies the map's invariant for a volume of size bytes: extents
// ordered, non-overlapping, non-empty, within the volume, and within what
// one record can hold. The error wraps ErrBroken and lists up to ten
// problems.
func (m *Map) Check(size int64) error {
	if probs := m.Problems(size); len(probs) > 0 {
		return fmt.Errorf("%w: %v", ErrBroken, probs)
	}
	return nil
}

// Problems is Check's findings, one line each (fsck prints them).
func (m *Map) Problems(size int64) []string {
	var probs []string
	prevEnd := int64(0)
	m.Ascend(func(e Extent) bool {
		bad := e.Length == 0 || e.Off < prevEnd || e.End() > size || e.Flags&^KnownFlags != 0
		if e.Run() {
			// A run: uncompressed records with block checksums, every
			// record within a 32-bit segment offset.
			last := (int64(e.Skip) + int64(e.Length) - 1) / max(int64(e.PayLen), 1)
			bad = bad || !e.runnable() || e.PayLen > segment.MaxDataLen ||
				int64(e.PayOff)+last*Stride(e.PayLen)+int64(e.PayLen) > 1<<32-1
		} else {
			bad = bad || uint64(e.Skip)+uint64(e.Length) > segment.MaxDataLen
		}
		if bad {
			probs = append(probs, fmt.Sprintf("map invariant broken at extent %d+%d (previous ends at %d, size %d)", e.Off, e.Length, prevEnd, size))
			return len(probs) < maxProblems
		}
		prevEnd = e.End()
		return true
	})
	return probs
}

// InsertDisjoint adds e, which the caller knows overlaps no extent of m
// (decoding an ordered checkpoint); it is cheaper than Set.
func (m *Map) InsertDisjoint(e Extent) { m.t.ReplaceOrInsert(e) }
