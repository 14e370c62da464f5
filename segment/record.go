package segment

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Format constants. Part of the format, never change.
const (
	// Magic starts every record: "HLR1" little-endian.
	Magic uint32 = 0x31524c48
	// Version is the newest record format version this binary reads.
	// Records are written with version 1, except copy records (version 2),
	// so binaries that predate the cleaner refuse a cleaned log as newer
	// rather than misread it.
	Version = 2
	// HeaderSize is the size of a record header.
	HeaderSize = 32
	// MaxDataLen bounds the logical length of a data record.
	MaxDataLen = 64 << 10
	// MaxPayloadLen bounds any payload; larger lengths are corruption.
	MaxPayloadLen = MaxDataLen + MaxDataLen/6 + 64 // snappy's worst case
	// SegmentHeaderPayloadLen is the payload size of a segment header record.
	SegmentHeaderPayloadLen = 48
)

// Type is a record type.
type Type uint8

// Record types.
const (
	TypeSegmentHeader Type = 1
	TypeData          Type = 2
	TypeHole          Type = 3
	// TypeMeta carries a volume metadata operation (snapshot create and
	// delete, rollback); the payload format belongs to package lfs.
	TypeMeta Type = 4
	// TypeCopy holds live data the cleaner copied forward out of an old
	// segment. It is laid out like TypeData, but replay never applies it to
	// the map by address: it becomes reachable only through a checkpoint or
	// snapshot map written after the copy (a later write to the same
	// address must win, whatever the log order).
	TypeCopy Type = 5
)

// MaxMetaLen bounds the payload of a meta record.
const MaxMetaLen = 4096

// FlagSnappy marks a payload compressed with snappy's block format.
const FlagSnappy uint8 = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is a decoded record header.
type Header struct {
	Type       Type
	Flags      uint8
	Addr       uint64 // volume byte offset, or segment seq for a segment header
	LogicalLen uint32 // volume bytes covered
	PayloadLen uint32
}

// RecordLen is the encoded size of the record.
func (h Header) RecordLen() int { return HeaderSize + int(h.PayloadLen) }

// Append encodes a record with header h (PayloadLen is taken from payload)
// and payload to dst and returns the extended slice.
func Append(dst []byte, h Header, payload []byte) []byte {
	h.PayloadLen = uint32(len(payload))
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	hdr := dst[start:]
	binary.LittleEndian.PutUint32(hdr[0:], Magic)
	hdr[4] = 1
	if h.Type == TypeCopy {
		hdr[4] = 2
	}
	hdr[5] = byte(h.Type)
	hdr[6] = h.Flags
	binary.LittleEndian.PutUint64(hdr[8:], h.Addr)
	binary.LittleEndian.PutUint32(hdr[16:], h.LogicalLen)
	binary.LittleEndian.PutUint32(hdr[20:], h.PayloadLen)
	crc := crc32.Update(0, castagnoli, hdr[:28])
	crc = crc32.Update(crc, castagnoli, payload)
	binary.LittleEndian.PutUint32(hdr[28:], crc)
	return append(dst, payload...)
}

// DecodeHeader checks and decodes the fixed fields of the header at the start
// of b, without the checksum (which covers the payload). It returns ErrTorn
// when b is shorter than a header.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrTorn
	}
	if m := binary.LittleEndian.Uint32(b[0:]); m != Magic {
		return Header{}, fmt.Errorf("%w: bad magic %#x", ErrCorrupt, m)
	}
	if b[4] > Version {
		return Header{}, fmt.Errorf("%w: version %d", ErrNewerVersion, b[4])
	}
	if b[4] == 0 || b[7] != 0 || binary.LittleEndian.Uint32(b[24:]) != 0 {
		return Header{}, fmt.Errorf("%w: bad version or reserved bytes", ErrCorrupt)
	}
	h := Header{
		Type:       Type(b[5]),
		Flags:      b[6],
		Addr:       binary.LittleEndian.Uint64(b[8:]),
		LogicalLen: binary.LittleEndian.Uint32(b[16:]),
		PayloadLen: binary.LittleEndian.Uint32(b[20:]),
	}
	if err := h.validate(); err != nil {
		return Header{}, err
	}
	return h, nil
}

func (h Header) validate() error {
	bad := func(why string) error { return fmt.Errorf("%w: %s", ErrCorrupt, why) }
	if h.Flags&^FlagSnappy != 0 {
		return bad("unknown flags")
	}
	switch h.Type {
	case TypeSegmentHeader:
		if h.PayloadLen != SegmentHeaderPayloadLen || h.LogicalLen != 0 || h.Flags != 0 {
			return bad("segment header lengths")
		}
	case TypeData, TypeCopy:
		if h.LogicalLen == 0 || h.LogicalLen > MaxDataLen || h.PayloadLen > MaxPayloadLen {
			return bad("data lengths")
		}
		if h.Flags&FlagSnappy == 0 && h.PayloadLen != h.LogicalLen {
			return bad("uncompressed payload length differs from logical length")
		}
	case TypeHole:
		if h.PayloadLen != 0 || h.LogicalLen == 0 || h.Flags != 0 {
			return bad("hole lengths")
		}
	case TypeMeta:
		if h.PayloadLen == 0 || h.PayloadLen > MaxMetaLen || h.LogicalLen != 0 || h.Flags != 0 || h.Addr != 0 {
			return bad("meta lengths")
		}
	default:
		return bad(fmt.Sprintf("unknown type %d", h.Type))
	}
	if h.Addr+uint64(h.LogicalLen) < h.Addr {
		return bad("address overflows")
	}
	return nil
}

// Decode decodes the record at the start of b and verifies its checksum. The
// payload aliases b. It returns ErrTorn when b ends inside the record and
// ErrCorrupt when the record is damaged.
func Decode(b []byte) (Header, []byte, error) {
	h, err := DecodeHeader(b)
	if err != nil {
		return Header{}, nil, err
	}
	if len(b) < h.RecordLen() {
		return Header{}, nil, ErrTorn
	}
	payload := b[HeaderSize:h.RecordLen()]
	if !VerifyChecksum(b[:HeaderSize], payload) {
		return Header{}, nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return h, payload, nil
}

// VerifyChecksum reports whether the CRC in header matches header and payload.
func VerifyChecksum(header, payload []byte) bool {
	crc := crc32.Update(0, castagnoli, header[:28])
	crc = crc32.Update(crc, castagnoli, payload)
	return crc == binary.LittleEndian.Uint32(header[28:])
}
