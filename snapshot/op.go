package snapshot

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hlfs/hlfs/segment"
)

// Kind is the kind of a snapshot operation; its value is the op byte of
// the meta record.
type Kind uint8

// The operations on a snapshot tree.
const (
	Create   Kind = 1 // snapshot the live volume
	Delete   Kind = 2 // remove a snapshot
	Rollback Kind = 3 // make the live volume a snapshot's content again
)

func (k Kind) String() string {
	switch k {
	case Create:
		return "create"
	case Delete:
		return "delete"
	case Rollback:
		return "rollback"
	}
	return fmt.Sprintf("kind %d", uint8(k))
}

// Op is one snapshot operation, as logged in a meta record
// (segment.TypeMeta). Clones need no operation of their own: a clone names
// its source snapshot by ID in its Lineage, and the source keeps the data
// while the clone is registered (lfs).
type Op struct {
	Kind    Kind
	ID      ID        // the snapshot created, deleted or rolled back to
	Parent  ID        // Create: the parent (the head when it was taken)
	Created time.Time // Create: when, UTC, to the nanosecond
	Name    string    // Create: the name
}

// opHeaderLen is the fixed part of an encoded Op.
const opHeaderLen = 26

// EncodeOp encodes op as a meta record payload (part of the format, never
// change; docs/format.md):
//
//	 0  1  kind: 1 create, 2 delete, 3 rollback
//	 1  3  reserved, 0
//	 4  4  snapshot id
//	 8  4  parent id (create)
//	12  4  reserved, 0
//	16  8  created, Unix nanoseconds (create)
//	24  2  name length N (create; 0 otherwise)
//	26  N  name (create)
func EncodeOp(op Op) []byte {
	b := make([]byte, opHeaderLen, opHeaderLen+len(op.Name))
	b[0] = byte(op.Kind)
	binary.LittleEndian.PutUint32(b[4:], uint32(op.ID))
	binary.LittleEndian.PutUint32(b[8:], uint32(op.Parent))
	if op.Kind == Create {
		binary.LittleEndian.PutUint64(b[16:], uint64(op.Created.UnixNano()))
	}
	binary.LittleEndian.PutUint16(b[24:], uint16(len(op.Name)))
	return append(b, op.Name...)
}

// DecodeOp decodes a meta record payload. Errors wrap ErrCorrupt: a short
// or inconsistent payload, an unknown kind, a create without a valid name
// or id, a delete or rollback with a name or without an id.
func DecodeOp(p []byte) (Op, error) {
	if len(p) < opHeaderLen {
		return Op{}, corruptf("meta record of %d bytes is too short", len(p))
	}
	op := Op{Kind: Kind(p[0]), ID: ID(binary.LittleEndian.Uint32(p[4:])), Parent: ID(binary.LittleEndian.Uint32(p[8:]))}
	n := int(binary.LittleEndian.Uint16(p[24:]))
	if len(p) != opHeaderLen+n {
		return Op{}, corruptf("meta record name length %d does not match its size %d", n, len(p))
	}
	op.Name = string(p[opHeaderLen:])
	switch op.Kind {
	case Create:
		op.Created = time.Unix(0, int64(binary.LittleEndian.Uint64(p[16:]))).UTC()
		if ValidateName(op.Name) != nil || op.ID == 0 {
			return Op{}, corruptf("snapshot create record with bad name %q or id %d", op.Name, op.ID)
		}
	case Delete, Rollback:
		if op.ID == 0 || n != 0 {
			return Op{}, corruptf("meta record op %d with bad id or a name", op.Kind)
		}
	default:
		return Op{}, corruptf("unknown meta op %d", op.Kind)
	}
	return op, nil
}

// Record encodes op as a complete log record (segment.TypeMeta).
func Record(op Op) []byte {
	return segment.Append(nil, segment.Header{Type: segment.TypeMeta}, EncodeOp(op))
}
