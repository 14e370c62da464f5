package snapshot

import (
	"encoding/binary"
	"hash/crc32"
	"sort"
)

// A family is a volume and the clones made from it (and from them). Every
// member has a branch id, unique in the family, and writes segments only
// into its own folder; extents name their segment by (branch, seq), so a
// clone's map can point into its source's segments without any rewriting
// and a read costs one map lookup at any clone depth.
//
// Lineage is a member's record of its family. A plain volume is branch 0
// and the root of its own family; it has no lineage object (PlainLineage).
type Lineage struct {
	Branch       uint16
	SourceBranch uint16 // NoBranch when not a clone (never was, or flattened)
	SourceSnap   ID     // the source snapshot's id
	SourceName   string // the source snapshot's name, for people
	SourceUID    uint64 // the source volume's uid
	// Volumes maps each branch the member's maps may name to its volume
	// folder, its own branch included.
	Volumes map[uint16]string
	// Root is the family root: ROOT/branches/ allocates branch ids.
	Root string
}

// NoBranch is the SourceBranch of a volume that is not a clone.
const NoBranch uint16 = 0xffff

// LineageVersion is the lineage layout this binary writes and the newest
// it reads.
const LineageVersion = 1

const lineageMagic uint32 = 0x314c4c48 // "HLL1"

// PlainLineage is the lineage of vol when it is not a clone.
func PlainLineage(vol string) Lineage {
	return Lineage{Branch: 0, SourceBranch: NoBranch, Volumes: map[uint16]string{0: vol}, Root: vol}
}

// Source returns the clone's source volume name, "" when not a clone.
func (l Lineage) Source() string {
	if l.SourceBranch == NoBranch {
		return ""
	}
	return l.Volumes[l.SourceBranch]
}

// Encode encodes the lineage object VOL/lineage (part of the format, never
// change; docs/format.md):
//
//	 0  4  magic "HLL1"
//	 4  2  version (LineageVersion)
//	 6  2  own branch id
//	 8  2  source branch id (NoBranch: not a clone, e.g. after flatten)
//	10  2  entry count N
//	12  4  source snapshot id
//	16  8  source volume uid
//	24     N entries, by branch: branch u16, name length u16, name
//	       root name length u16, root name
//	       source snapshot name length u16, name: its name when a clone;
//	       a zero length otherwise (a reader also accepts it absent)
//	       CRC-32C of everything before
func (l Lineage) Encode() []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint32(b[0:], lineageMagic)
	binary.LittleEndian.PutUint16(b[4:], LineageVersion)
	binary.LittleEndian.PutUint16(b[6:], l.Branch)
	binary.LittleEndian.PutUint16(b[8:], l.SourceBranch)
	binary.LittleEndian.PutUint16(b[10:], uint16(len(l.Volumes)))
	binary.LittleEndian.PutUint32(b[12:], uint32(l.SourceSnap))
	binary.LittleEndian.PutUint64(b[16:], l.SourceUID)
	ids := make([]int, 0, len(l.Volumes))
	for id := range l.Volumes {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	appendName := func(s string) {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	for _, id := range ids {
		b = binary.LittleEndian.AppendUint16(b, uint16(id))
		appendName(l.Volumes[uint16(id)])
	}
	appendName(l.Root)
	appendName(l.SourceName)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// DecodeLineage decodes a lineage object. Errors wrap ErrCorrupt, or
// ErrNewerVersion for a version above LineageVersion.
func DecodeLineage(b []byte) (Lineage, error) {
	if len(b) < 28 || binary.LittleEndian.Uint32(b) != lineageMagic {
		return Lineage{}, corruptf("lineage: bad magic or too short")
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return Lineage{}, corruptf("lineage: checksum mismatch")
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v > LineageVersion {
		return Lineage{}, ErrNewerVersion
	}
	l := Lineage{
		Branch:       binary.LittleEndian.Uint16(b[6:]),
		SourceBranch: binary.LittleEndian.Uint16(b[8:]),
		SourceSnap:   ID(binary.LittleEndian.Uint32(b[12:])),
		SourceUID:    binary.LittleEndian.Uint64(b[16:]),
		Volumes:      make(map[uint16]string),
	}
	n := int(binary.LittleEndian.Uint16(b[10:]))
	rest := body[24:]
	readName := func() (string, bool) {
		if len(rest) < 2 {
			return "", false
		}
		k := int(binary.LittleEndian.Uint16(rest))
		if len(rest) < 2+k {
			return "", false
		}
		s := string(rest[2 : 2+k])
		rest = rest[2+k:]
		return s, ValidateVolumeName(s) == nil
	}
	for i := 0; i < n; i++ {
		if len(rest) < 2 {
			return Lineage{}, corruptf("lineage: entries cut short")
		}
		id := binary.LittleEndian.Uint16(rest)
		rest = rest[2:]
		s, ok := readName()
		if !ok {
			return Lineage{}, corruptf("lineage: bad entry name")
		}
		l.Volumes[id] = s
	}
	root, ok := readName()
	if !ok {
		return Lineage{}, corruptf("lineage: bad root name")
	}
	l.Root = root
	if l.SourceBranch != NoBranch {
		if l.SourceName, ok = readName(); !ok {
			return Lineage{}, corruptf("lineage: bad source snapshot name")
		}
	} else if len(rest) == 2 && rest[0] == 0 && rest[1] == 0 {
		rest = rest[2:]
	}
	if len(rest) != 0 {
		return Lineage{}, corruptf("lineage: trailing bytes")
	}
	if _, ok := l.Volumes[l.Branch]; !ok {
		return Lineage{}, corruptf("lineage: own branch missing from entries")
	}
	if _, ok := l.Volumes[l.SourceBranch]; !ok && l.SourceBranch != NoBranch {
		return Lineage{}, corruptf("lineage: source branch missing from entries")
	}
	return l, nil
}
