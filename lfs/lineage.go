package lfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"path"
	"sort"
	"strconv"

	"github.com/hlfs/hlfs/internal/objstore"
)

// A family is a volume and the clones made from it (and from them). Every
// member has a branch id, unique in the family, and writes segments only
// into its own folder; extents name their segment by (branch, seq), so a
// clone's map can point into its source's segments without any rewriting
// and a read costs one map lookup at any clone depth.
//
// A plain volume is branch 0 and the root of its own family; it has no
// lineage object. A clone has VOL/lineage (docs/format.md):
//
//	 0  4  magic "HLL1"
//	 4  2  format version
//	 6  2  own branch id
//	 8  2  source branch id (noBranch: not a clone, e.g. after flatten)
//	10  2  entry count N
//	12  4  source snapshot id
//	16  8  source volume uid
//	24  N entries: branch u16, name length u16, name
//	    root name length u16, root name (the volume holding the branch registry)
//	    source snapshot name length u16, name ("" when not a clone)
//	    CRC-32C of everything before
type lineage struct {
	branch       uint16
	sourceBranch uint16 // noBranch when not a clone
	sourceSnap   uint32
	sourceName   string // the source snapshot's name, for people
	sourceUID    uint64
	volumes      map[uint16]string // branch → volume folder, own branch included
	root         string            // family root: ROOT/branches/ allocates ids
}

const (
	lineageMagic uint32 = 0x314c4c48
	noBranch     uint16 = 0xffff
)

func lineageName(vol string) string         { return path.Join(vol, "lineage") }
func branchesDir(vol string) string         { return path.Join(vol, "branches") }
func clonesDir(vol string) string           { return path.Join(vol, "clones") }
func cloneRegName(src, clone string) string { return path.Join(clonesDir(src), clone) }

// source returns the clone's source volume name, "" when not a clone.
func (l lineage) source() string {
	if l.sourceBranch == noBranch {
		return ""
	}
	return l.volumes[l.sourceBranch]
}

func plainLineage(vol string) lineage {
	return lineage{branch: 0, sourceBranch: noBranch, volumes: map[uint16]string{0: vol}, root: vol}
}

func (l lineage) encode() []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint32(b[0:], lineageMagic)
	binary.LittleEndian.PutUint16(b[4:], formatVersion)
	binary.LittleEndian.PutUint16(b[6:], l.branch)
	binary.LittleEndian.PutUint16(b[8:], l.sourceBranch)
	binary.LittleEndian.PutUint16(b[10:], uint16(len(l.volumes)))
	binary.LittleEndian.PutUint32(b[12:], l.sourceSnap)
	binary.LittleEndian.PutUint64(b[16:], l.sourceUID)
	ids := make([]int, 0, len(l.volumes))
	for id := range l.volumes {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	for _, id := range ids {
		b = binary.LittleEndian.AppendUint16(b, uint16(id))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(l.volumes[uint16(id)])))
		b = append(b, l.volumes[uint16(id)]...)
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(l.root)))
	b = append(b, l.root...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(l.sourceName)))
	b = append(b, l.sourceName...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeLineage(name string, b []byte) (lineage, error) {
	bad := func(why string) (lineage, error) { return lineage{}, corruptf(name, 0, "lineage: %s", why) }
	if len(b) < 28 || binary.LittleEndian.Uint32(b) != lineageMagic {
		return bad("bad magic or too short")
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return bad("checksum mismatch")
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v > formatVersion {
		return lineage{}, fmt.Errorf("%w: %s has version %d", ErrNewerFormat, name, v)
	}
	l := lineage{
		branch:       binary.LittleEndian.Uint16(b[6:]),
		sourceBranch: binary.LittleEndian.Uint16(b[8:]),
		sourceSnap:   binary.LittleEndian.Uint32(b[12:]),
		sourceUID:    binary.LittleEndian.Uint64(b[16:]),
		volumes:      make(map[uint16]string),
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
		return s, ValidateName(s) == nil
	}
	for i := 0; i < n; i++ {
		if len(rest) < 2 {
			return bad("entries cut short")
		}
		id := binary.LittleEndian.Uint16(rest)
		rest = rest[2:]
		s, ok := readName()
		if !ok {
			return bad("bad entry name")
		}
		l.volumes[id] = s
	}
	root, ok := readName()
	if !ok {
		return bad("bad root name")
	}
	l.root = root
	if l.sourceBranch != noBranch {
		if l.sourceName, ok = readName(); !ok {
			return bad("bad source snapshot name")
		}
	} else if len(rest) == 2 && rest[0] == 0 && rest[1] == 0 {
		rest = rest[2:]
	}
	if len(rest) != 0 {
		return bad("trailing bytes")
	}
	if _, ok := l.volumes[l.branch]; !ok {
		return bad("own branch missing from entries")
	}
	if _, ok := l.volumes[l.sourceBranch]; !ok && l.sourceBranch != noBranch {
		return bad("source branch missing from entries")
	}
	return l, nil
}

// readLineage loads vol's lineage; a volume without one is a plain volume.
func readLineage(st objstore.Store, vol string) (lineage, error) {
	b, err := readObject(st, lineageName(vol))
	if errors.Is(err, objstore.ErrNotExist) {
		return plainLineage(vol), nil
	}
	if err != nil {
		return lineage{}, err
	}
	return decodeLineage(lineageName(vol), b)
}

// writeLineage replaces vol's lineage atomically.
func writeLineage(st objstore.Store, vol string, l lineage) error {
	tmp := fmt.Sprintf("%s.tmp-%016x", lineageName(vol), newUID())
	if err := writeObject(st, tmp, l.encode()); err != nil {
		return err
	}
	return st.Rename(tmp, lineageName(vol))
}

// allocateBranch reserves a new branch id in the family registry of root for
// volume vol: ROOT/branches/<id> is created exclusively, so two clones made
// at once never share an id. Branch 0 is the root's own.
func allocateBranch(st objstore.Store, root, vol string) (uint16, error) {
	for attempt := 0; attempt < 100; attempt++ {
		names, err := st.List(branchesDir(root))
		if err != nil {
			return 0, err
		}
		next := uint64(1)
		for _, n := range names {
			if id, err := strconv.ParseUint(n, 16, 16); err == nil && id+1 > next {
				next = id + 1
			}
		}
		if next >= uint64(noBranch) {
			return 0, fmt.Errorf("lfs: family of %s has no branch ids left (65534 clones)", root)
		}
		err = writeObject(st, path.Join(branchesDir(root), fmt.Sprintf("%04x", next)), []byte(vol))
		if err == nil {
			return uint16(next), nil
		}
		if !errors.Is(err, objstore.ErrExist) {
			return 0, err
		}
	}
	return 0, fmt.Errorf("lfs: could not allocate a branch id in %s", root)
}

// liveClones returns the clones registered in src that still depend on it
// (optionally only those of snapshot id snap; 0 = any), sorted. A
// registration whose clone is gone or no longer names src as its source
// (removed, or flattened) is stale and ignored.
func liveClones(st objstore.Store, src string, snap uint32) ([]string, error) {
	names, err := st.List(clonesDir(src))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if ValidateName(n) != nil {
			continue
		}
		if _, err := readSuperblock(st, n); errors.Is(err, ErrNotFound) {
			continue
		}
		l, err := readLineage(st, n)
		if err != nil {
			return nil, err
		}
		if l.source() != src || (snap != 0 && l.sourceSnap != snap) {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}
