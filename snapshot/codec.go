package snapshot

import (
	"encoding/binary"
	"hash/crc32"
	"time"

	"github.com/hlfs/hlfs/segment"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// TreeVersion is the layout Encode writes: the version of the checkpoint
// that holds the table. DecodeTree reads versions 1 and 2.
const TreeVersion = 2

// Encode encodes the tree as the snapshot table section of a checkpoint,
// version 2 (part of the format, never change; docs/format.md):
//
//	 0  4  head id
//	 4  4  next id
//	 8  4  count N
//	12     N entries: id u32, parent u32, created i64 (Unix ns),
//	       position seq u64, position offset u64, [v2: generation u32,]
//	       name length u16, name
//	       [v2: last rollback position seq u64, offset u64]
//	       CRC-32C of the section
func (t *Tree) Encode() []byte {
	b := make([]byte, 12)
	binary.LittleEndian.PutUint32(b[0:], uint32(t.head))
	binary.LittleEndian.PutUint32(b[4:], uint32(t.next))
	binary.LittleEndian.PutUint32(b[8:], uint32(len(t.nodes)))
	for _, n := range t.nodes {
		b = binary.LittleEndian.AppendUint32(b, uint32(n.ID))
		b = binary.LittleEndian.AppendUint32(b, uint32(n.Parent))
		b = binary.LittleEndian.AppendUint64(b, uint64(n.Created.UnixNano()))
		b = binary.LittleEndian.AppendUint64(b, n.Pos.Seq)
		b = binary.LittleEndian.AppendUint64(b, uint64(n.Pos.Off))
		b = binary.LittleEndian.AppendUint32(b, uint32(n.Gen))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(n.Name)))
		b = append(b, n.Name...)
	}
	b = binary.LittleEndian.AppendUint64(b, t.rollback.Seq)
	b = binary.LittleEndian.AppendUint64(b, uint64(t.rollback.Off))
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// DecodeTree decodes a snapshot table section written by a checkpoint of
// version ver (1: no generations and no rollback position; 2; 0 is
// invalid). A decoded
// tree passes Check. Errors wrap ErrCorrupt, or ErrNewerVersion for a ver
// above TreeVersion.
func DecodeTree(b []byte, ver uint16) (*Tree, error) {
	if ver > TreeVersion {
		return nil, ErrNewerVersion
	}
	if ver == 0 {
		return nil, corruptf("snapshot table of version 0")
	}
	if len(b) < 16 {
		return nil, corruptf("snapshot table of %d bytes is too short", len(b))
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, corruptf("snapshot table checksum mismatch")
	}
	t := &Tree{head: ID(binary.LittleEndian.Uint32(body[0:])), next: ID(binary.LittleEndian.Uint32(body[4:]))}
	n := int(binary.LittleEndian.Uint32(body[8:]))
	rest := body[12:]
	if ver >= 2 {
		if len(rest) < 16 {
			return nil, corruptf("snapshot table cut short")
		}
		tail := rest[len(rest)-16:]
		t.rollback = segment.Pos{Seq: binary.LittleEndian.Uint64(tail), Off: int64(binary.LittleEndian.Uint64(tail[8:]))}
		rest = rest[:len(rest)-16]
	}
	fixed := 34 // through the name length
	if ver >= 2 {
		fixed = 38
	}
	for i := 0; i < n; i++ {
		if len(rest) < fixed {
			return nil, corruptf("snapshot table cut short")
		}
		node := Node{
			ID:      ID(binary.LittleEndian.Uint32(rest[0:])),
			Parent:  ID(binary.LittleEndian.Uint32(rest[4:])),
			Created: time.Unix(0, int64(binary.LittleEndian.Uint64(rest[8:]))).UTC(),
			Pos:     segment.Pos{Seq: binary.LittleEndian.Uint64(rest[16:]), Off: int64(binary.LittleEndian.Uint64(rest[24:]))},
		}
		if ver >= 2 {
			node.Gen = Gen(binary.LittleEndian.Uint32(rest[32:]))
		}
		k := int(binary.LittleEndian.Uint16(rest[fixed-2:]))
		if len(rest) < fixed+k {
			return nil, corruptf("snapshot table cut short")
		}
		node.Name = string(rest[fixed : fixed+k])
		rest = rest[fixed+k:]
		t.nodes = append(t.nodes, node)
	}
	if len(rest) != 0 {
		return nil, corruptf("snapshot table has %d bytes too many", len(rest))
	}
	if err := t.Check(); err != nil {
		return nil, corruptf("%v", err)
	}
	return t, nil
}
