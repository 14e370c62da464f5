package lfs

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"path"
	"time"

	"github.com/hlfs/hlfs/segment"
)

// snapshot is one node of a volume's snapshot tree.
type snapshot struct {
	id      uint32
	parent  uint32 // 0 at the root
	name    string
	created time.Time
	pos     logPos     // where its meta record starts in the log
	m       *extentMap // its map while in memory; nil once in VOL/snap/<id>
	durable bool       // VOL/snap/<id> is written
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

// ids returns the set of snapshot ids.
func (t *snapTable) ids() map[uint32]bool {
	out := make(map[uint32]bool, len(t.list))
	for _, s := range t.list {
		out[s.id] = true
	}
	return out
}

// copyMeta copies the table without maps (for a checkpoint cut).
func (t *snapTable) copyMeta() *snapTable {
	c := &snapTable{next: t.next, head: t.head}
	for _, s := range t.list {
		cs := *s
		cs.m = nil
		c.list = append(c.list, &cs)
	}
	return c
}

func snapDir(vol string) string { return path.Join(vol, "snap") }
func snapObject(vol string, id uint32) string {
	return path.Join(snapDir(vol), fmt.Sprintf("%08x", id))
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
//	       position offset u64, name length u16, name
//	       CRC-32C of the section
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
		b = binary.LittleEndian.AppendUint16(b, uint16(len(s.name)))
		b = append(b, s.name...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeSnapTable(b []byte) (*snapTable, error) {
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
	for i := 0; i < n; i++ {
		if len(rest) < 34 {
			return nil, fmt.Errorf("snapshot table cut short")
		}
		s := &snapshot{
			id:      binary.LittleEndian.Uint32(rest[0:]),
			parent:  binary.LittleEndian.Uint32(rest[4:]),
			created: time.Unix(0, int64(binary.LittleEndian.Uint64(rest[8:]))).UTC(),
			pos:     logPos{binary.LittleEndian.Uint64(rest[16:]), int64(binary.LittleEndian.Uint64(rest[24:]))},
			durable: true,
		}
		k := int(binary.LittleEndian.Uint16(rest[32:]))
		if len(rest) < 34+k {
			return nil, fmt.Errorf("snapshot table cut short")
		}
		s.name = string(rest[34 : 34+k])
		rest = rest[34+k:]
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
