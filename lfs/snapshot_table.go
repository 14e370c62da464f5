package lfs

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/objstore"

	"github.com/hlfs/hlfs/segment"
)

// snapshot is one node of a volume's snapshot tree.
type snapshot struct {
	id      uint32
	parent  uint32 // 0 at the root
	name    string
	created time.Time
	pos     logPos        // where its meta record starts in the log
	m       *blockmap.Map // its map while in memory; nil once in its map object
	durable bool          // the map object of generation gen holds m
	gen     uint32        // generation of the newest map object written
	nextGen uint32        // generation the next map object gets
}

// snapTable is the snapshot tree of a volume. Not safe for concurrent use;
// the Volume guards it with mu, and replay owns its own.
//
// Invariant: ids are unique and below next; every parent is 0 or in list;
// head is 0 or in list.
type snapTable struct {
	next uint32 // next id to give out; ids start at 1
	head uint32 // the snapshot the live volume descends from; 0: none
	list []*snapshot
	// rollback is the last rollback's meta record (zero: none); the space
	// books need it (books.removed).
	rollback logPos
}

func newSnapTable() *snapTable { return &snapTable{next: 1} }

func (t *snapTable) byName(name string) *snapshot {
	for _, s := range t.list {
		if s.name == name {
			return s
		}
	}
	return nil
}

func (t *snapTable) byID(id uint32) *snapshot {
	for _, s := range t.list {
		if s.id == id {
			return s
		}
	}
	return nil
}

// remove deletes id; its children re-parent to its parent, and the live
// volume, if it descended from it, too.
func (t *snapTable) remove(id uint32) {
	s := t.byID(id)
	if s == nil {
		return
	}
	for _, c := range t.list {
		if c.parent == id {
			c.parent = s.parent
		}
	}
	if t.head == id {
		t.head = s.parent
	}
	for i, c := range t.list {
		if c.id == id {
			t.list = append(t.list[:i], t.list[i+1:]...)
			break
		}
	}
}

// copyMeta copies the table without maps.
func (t *snapTable) copyMeta() *snapTable {
	c := t.copyWithMaps()
	for _, s := range c.list {
		s.m = nil
	}
	return c
}

// copyWithMaps copies the table; the copies share the (immutable) maps.
func (t *snapTable) copyWithMaps() *snapTable {
	c := &snapTable{next: t.next, head: t.head, rollback: t.rollback}
	for _, s := range t.list {
		cs := *s
		c.list = append(c.list, &cs)
	}
	return c
}

// snapGen names one map object of a snapshot.
type snapGen struct{ id, gen uint32 }

// gens returns the map objects the table names.
func (t *snapTable) gens() map[snapGen]bool {
	out := make(map[snapGen]bool, len(t.list))
	for _, s := range t.list {
		out[snapGen{s.id, s.gen}] = true
	}
	return out
}

func snapDir(vol string) string { return path.Join(vol, "snap") }

// snapObject names generation gen of snapshot id's map object.
func snapObject(vol string, id, gen uint32) string {
	if gen == 0 {
		return path.Join(snapDir(vol), fmt.Sprintf("%08x", id))
	}
	return path.Join(snapDir(vol), fmt.Sprintf("%08x.%d", id, gen))
}

// parseSnapObject parses a name in VOL/snap/: ok is false for temporaries
// and foreign names.
func parseSnapObject(n string) (g snapGen, ok bool) {
	hex, rest, hasGen := strings.Cut(n, ".")
	id, err := strconv.ParseUint(hex, 16, 32)
	if err != nil || len(hex) != 8 {
		return g, false
	}
	g.id = uint32(id)
	if hasGen {
		gen, err := strconv.ParseUint(rest, 10, 32)
		if err != nil || gen == 0 || strconv.FormatUint(gen, 10) != rest {
			return g, false
		}
		g.gen = uint32(gen)
	}
	return g, true
}

// latestSnapObject names the newest generation of snapshot id's map object
// (what a clone starts from: a snapshot with clones is never moved again).
func latestSnapObject(st objstore.Store, vol string, id uint32) (string, error) {
	names, err := st.List(snapDir(vol))
	if err != nil {
		return "", err
	}
	best, found := uint32(0), false
	for _, n := range names {
		if g, ok := parseSnapObject(n); ok && g.id == id && (!found || g.gen > best) {
			best, found = g.gen, true
		}
	}
	if !found {
		return "", fmt.Errorf("%w: %s", objstore.ErrNotExist, snapObject(vol, id, 0))
	}
	return snapObject(vol, id, best), nil
}

// Meta record payload (part of the format, never change; docs/format.md):
//
//	 0  1  op: 1 snapshot create, 2 snapshot delete, 3 rollback
//	 1  3  reserved
//	 4  4  snapshot id
//	 8  4  parent id (create)
//	12  4  reserved
//	16  8  created, Unix nanoseconds (create)
//	24  2  name length (create)
//	26     name (create)
type metaOp struct {
	op      uint8
	id      uint32
	parent  uint32
	created time.Time
	name    string
}

const (
	metaSnapshotCreate uint8 = 1
	metaSnapshotDelete uint8 = 2
	metaRollback       uint8 = 3
)

func (o metaOp) encode() []byte {
	b := make([]byte, 26, 26+len(o.name))
	b[0] = o.op
	binary.LittleEndian.PutUint32(b[4:], o.id)
	binary.LittleEndian.PutUint32(b[8:], o.parent)
	if o.op == metaSnapshotCreate {
		binary.LittleEndian.PutUint64(b[16:], uint64(o.created.UnixNano()))
	}
	binary.LittleEndian.PutUint16(b[24:], uint16(len(o.name)))
	return append(b, o.name...)
}

func decodeMetaOp(p []byte) (metaOp, error) {
	if len(p) < 26 {
		return metaOp{}, fmt.Errorf("meta record of %d bytes is too short", len(p))
	}
	o := metaOp{op: p[0], id: binary.LittleEndian.Uint32(p[4:]), parent: binary.LittleEndian.Uint32(p[8:])}
	n := int(binary.LittleEndian.Uint16(p[24:]))
	if len(p) != 26+n {
		return metaOp{}, fmt.Errorf("meta record name length %d does not match its size %d", n, len(p))
	}
	o.name = string(p[26:])
	switch o.op {
	case metaSnapshotCreate:
		o.created = time.Unix(0, int64(binary.LittleEndian.Uint64(p[16:]))).UTC()
		if ValidateName(o.name) != nil || o.id == 0 {
			return metaOp{}, fmt.Errorf("snapshot create record with bad name %q or id %d", o.name, o.id)
		}
	case metaSnapshotDelete, metaRollback:
		if o.id == 0 || n != 0 {
			return metaOp{}, fmt.Errorf("meta record op %d with bad id or a name", o.op)
		}
	default:
		return metaOp{}, fmt.Errorf("unknown meta op %d", o.op)
	}
	return o, nil
}

// metaRecord encodes op as a complete record.
func metaRecord(o metaOp) []byte {
	return segment.Append(nil, segment.Header{Type: segment.TypeMeta}, o.encode())
}

// Snapshot table section of a checkpoint (after the extents' CRC):
//
//	 0  4  head
//	 4  4  next id
//	 8  4  count N
//	12     N entries: id u32, parent u32, created i64, position seq u64,
//	       position offset u64, [v2: generation u32,] name length u16, name
//	       [v2: last rollback position seq u64, offset u64]
//	       CRC-32C of the section
//
// encode writes checkpoint version 2.
func (t *snapTable) encode() []byte {
	b := make([]byte, 12)
	binary.LittleEndian.PutUint32(b[0:], t.head)
	binary.LittleEndian.PutUint32(b[4:], t.next)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(t.list)))
	for _, s := range t.list {
		b = binary.LittleEndian.AppendUint32(b, s.id)
		b = binary.LittleEndian.AppendUint32(b, s.parent)
		b = binary.LittleEndian.AppendUint64(b, uint64(s.created.UnixNano()))
		b = binary.LittleEndian.AppendUint64(b, s.pos.seq)
		b = binary.LittleEndian.AppendUint64(b, uint64(s.pos.off))
		b = binary.LittleEndian.AppendUint32(b, s.gen)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(s.name)))
		b = append(b, s.name...)
	}
	b = binary.LittleEndian.AppendUint64(b, t.rollback.seq)
	b = binary.LittleEndian.AppendUint64(b, uint64(t.rollback.off))
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeSnapTable decodes the table of a checkpoint of version ver.
func decodeSnapTable(b []byte, ver uint16) (*snapTable, error) {
	if len(b) < 16 {
		return nil, fmt.Errorf("snapshot table of %d bytes is too short", len(b))
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("snapshot table checksum mismatch")
	}
	t := &snapTable{head: binary.LittleEndian.Uint32(body[0:]), next: binary.LittleEndian.Uint32(body[4:])}
	n := int(binary.LittleEndian.Uint32(body[8:]))
	rest := body[12:]
	if ver >= 2 {
		if len(rest) < 16 {
			return nil, fmt.Errorf("snapshot table cut short")
		}
		tail := rest[len(rest)-16:]
		t.rollback = logPos{binary.LittleEndian.Uint64(tail), int64(binary.LittleEndian.Uint64(tail[8:]))}
		rest = rest[:len(rest)-16]
	}
	for i := 0; i < n; i++ {
		fixed := 34 // through the name length
		if ver >= 2 {
			fixed = 38
		}
		if len(rest) < fixed {
			return nil, fmt.Errorf("snapshot table cut short")
		}
		var gen uint32
		if ver >= 2 {
			gen = binary.LittleEndian.Uint32(rest[32:])
		}
		s := &snapshot{
			id:      binary.LittleEndian.Uint32(rest[0:]),
			parent:  binary.LittleEndian.Uint32(rest[4:]),
			created: time.Unix(0, int64(binary.LittleEndian.Uint64(rest[8:]))).UTC(),
			pos:     logPos{binary.LittleEndian.Uint64(rest[16:]), int64(binary.LittleEndian.Uint64(rest[24:]))},
			durable: true,
			gen:     gen,
			nextGen: gen + 1,
		}
		k := int(binary.LittleEndian.Uint16(rest[fixed-2:]))
		if len(rest) < fixed+k {
			return nil, fmt.Errorf("snapshot table cut short")
		}
		s.name = string(rest[fixed : fixed+k])
		rest = rest[fixed+k:]
		if ValidateName(s.name) != nil || s.id == 0 || s.id >= t.next || t.byID(s.id) != nil {
			return nil, fmt.Errorf("snapshot table entry %d is invalid", i)
		}
		t.list = append(t.list, s)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("snapshot table has %d bytes too many", len(rest))
	}
	for _, s := range t.list {
		if s.parent != 0 && t.byID(s.parent) == nil {
			return nil, fmt.Errorf("snapshot %s has unknown parent %d", s.name, s.parent)
		}
	}
	if t.head != 0 && t.byID(t.head) == nil {
		return nil, fmt.Errorf("snapshot table head %d unknown", t.head)
	}
	return t, nil
}
