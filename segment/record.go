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
	// Version is the newest record format version this binary reads, and
	// the one the log writer gives every record it places in a segment
	// (Seal). Append encodes data and copy records as version 3 (block
	// checksums after the payload) and the others as version 1; Seal turns
	// them into version 4. Versions 1, 2 (copy records without block
	// checksums) and 3 are still read.
	Version = 4
	// VersionSeeded is the first version whose record checksum is seeded
	// with the seq of the segment holding the record: such a record
	// validates only in that segment (see Seal).
	VersionSeeded = 4
	// ChecksumBlock is the granularity of the block checksums of version 3
	// data and copy records: one CRC-32C per this many stored payload
	// bytes (the last block may be shorter).
	ChecksumBlock = 4096
	// HeaderSize is the size of a record header.
	HeaderSize = 32
	// MaxDataLen bounds the logical length of a data record.
	MaxDataLen = 64 << 10
	// MaxPayloadLen bounds any payload; larger lengths are corruption.
	MaxPayloadLen = MaxDataLen + MaxDataLen/6 + 64 // snappy's worst case
	// SegmentHeaderPayloadLen is the payload size of a segment header record.
	SegmentHeaderPayloadLen = 48
	// MaxRecordLen bounds the encoded size of any record.
	MaxRecordLen = HeaderSize + MaxPayloadLen + 4*((MaxPayloadLen+ChecksumBlock-1)/ChecksumBlock)
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
	// Version is the record's format version; Append sets it
	// (VersionOf), Decode reports it.
	Version    uint8
	Type       Type
	Flags      uint8
	Addr       uint64 // volume byte offset, or segment seq for a segment header
	LogicalLen uint32 // volume bytes covered
	PayloadLen uint32
}

// VersionOf is the version Append encodes records of type t with (before
// Seal).
func VersionOf(t Type) uint8 {
	if t == TypeData || t == TypeCopy {
		return 3
	}
	return 1
}

// HasBlockSums reports whether the record carries block checksums after
// its payload (version 3 and 4 data and copy records).
func (h Header) HasBlockSums() bool {
	return h.Version >= 3 && (h.Type == TypeData || h.Type == TypeCopy)
}

// BlockSumsLen is the size of the block checksums of a payload of n bytes.
func BlockSumsLen(n uint32) int { return 4 * int((n+ChecksumBlock-1)/ChecksumBlock) }

// RecordLen is the encoded size of the record.
func (h Header) RecordLen() int {
	n := HeaderSize + int(h.PayloadLen)
	if h.HasBlockSums() {
		n += BlockSumsLen(h.PayloadLen)
	}
	return n
}

// Append encodes a record with header h (PayloadLen is taken from payload,
// Version from VersionOf) and payload to dst and returns the extended
// slice. A version 3 record's checksum covers its header and its block
// checksums, which cover the payload.
func Append(dst []byte, h Header, payload []byte) []byte {
	h.PayloadLen = uint32(len(payload))
	h.Version = VersionOf(h.Type)
	start := len(dst)
	dst = appendHeader(dst, h)
	dst = append(dst, payload...)
	crc := crc32.Update(0, castagnoli, dst[start:start+28])
	if h.HasBlockSums() {
		sums := len(dst)
		dst = AppendBlockSums(dst, payload)
		crc = crc32.Update(crc, castagnoli, dst[sums:])
	} else {
		crc = crc32.Update(crc, castagnoli, payload)
	}
	binary.LittleEndian.PutUint32(dst[start+28:], crc)
	return dst
}

// Seal turns rec, one record encoded by Append (or sealed before), into a
// version 4 record of segment seq, in place: it sets the version byte and
// recomputes the checksum, seeded with seq, over the header and the block
// checksums (data and copy records) or the payload (the others). The
// payload is not read for data and copy records. It panics when rec is not
// such a record: the caller's encoding is broken.
func Seal(rec []byte, seq uint64) {
	if len(rec) < HeaderSize || binary.LittleEndian.Uint32(rec) != Magic {
		panic("segment: Seal of bytes that are not a record")
	}
	t := Type(rec[5])
	if v := rec[4]; v != VersionOf(t) && v != VersionSeeded {
		panic(fmt.Sprintf("segment: Seal of a version %d record of type %d", v, t))
	}
	rec[4] = VersionSeeded
	binary.LittleEndian.PutUint32(rec[24:], uint32(seq)) // the seq hint (StaleSeq)
	h := Header{Version: VersionSeeded, Type: t, PayloadLen: binary.LittleEndian.Uint32(rec[20:])}
	if len(rec) != h.RecordLen() {
		panic(fmt.Sprintf("segment: Seal of %d bytes, the record is %d", len(rec), h.RecordLen()))
	}
	binary.LittleEndian.PutUint32(rec[28:], checksum(rec, h, seq))
}

// appendHeader appends h's 32 header bytes with a zero checksum.
func appendHeader(dst []byte, h Header) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	hdr := dst[start:]
	binary.LittleEndian.PutUint32(hdr[0:], Magic)
	hdr[4] = h.Version
	hdr[5] = byte(h.Type)
	hdr[6] = h.Flags
	binary.LittleEndian.PutUint64(hdr[8:], h.Addr)
	binary.LittleEndian.PutUint32(hdr[16:], h.LogicalLen)
	binary.LittleEndian.PutUint32(hdr[20:], h.PayloadLen)
	return dst
}

// AppendSplit encodes a data or copy record as Append does but leaves its
// payload out: dst gets the header, then the block checksums. The record
// is the header, the payload, then those checksums, in that order; a
// caller holding the payload elsewhere writes the three parts in sequence
// and saves copying it (SealSplit seals such a record).
func AppendSplit(dst []byte, h Header, payload []byte) []byte {
	if h.Type != TypeData && h.Type != TypeCopy {
		panic(fmt.Sprintf("segment: AppendSplit of a record of type %d", h.Type))
	}
	h.PayloadLen = uint32(len(payload))
	h.Version = VersionOf(h.Type)
	start := len(dst)
	dst = appendHeader(dst, h)
	dst = AppendBlockSums(dst, payload)
	crc := crc32.Update(0, castagnoli, dst[start:start+28])
	crc = crc32.Update(crc, castagnoli, dst[start+HeaderSize:])
	binary.LittleEndian.PutUint32(dst[start+28:], crc)
	return dst
}

// SealSplit is Seal for a data or copy record held in parts, as
// AppendSplit encodes it: hdr is its header, sums its block checksums (the
// payload, which the checksum does not read, is elsewhere).
func SealSplit(hdr, sums []byte, seq uint64) {
	if len(hdr) != HeaderSize || binary.LittleEndian.Uint32(hdr) != Magic {
		panic("segment: SealSplit of bytes that are not a record header")
	}
	t := Type(hdr[5])
	if t != TypeData && t != TypeCopy || hdr[4] != VersionOf(t) && hdr[4] != VersionSeeded {
		panic(fmt.Sprintf("segment: SealSplit of a version %d record of type %d", hdr[4], t))
	}
	if len(sums) != BlockSumsLen(binary.LittleEndian.Uint32(hdr[20:])) {
		panic("segment: SealSplit with block checksums of the wrong length")
	}
	hdr[4] = VersionSeeded
	binary.LittleEndian.PutUint32(hdr[24:], uint32(seq))
	binary.LittleEndian.PutUint32(hdr[28:], seededChecksum(hdr, sums, seq))
}

// seededChecksum is the version 4 checksum of a record whose header is hdr
// and whose covered bytes (block checksums or payload) are covered.
func seededChecksum(hdr, covered []byte, seq uint64) uint32 {
	var s [8]byte
	binary.LittleEndian.PutUint64(s[:], seq)
	crc := crc32.Update(0, castagnoli, s[:])
	crc = crc32.Update(crc, castagnoli, hdr[:28])
	return crc32.Update(crc, castagnoli, covered)
}

// covered is the part of a complete record b after its header that its
// header checksum covers: the block checksums or the payload.
func covered(b []byte, h Header) []byte {
	if h.HasBlockSums() {
		return b[HeaderSize+int(h.PayloadLen) : h.RecordLen()]
	}
	return b[HeaderSize : HeaderSize+int(h.PayloadLen)]
}

// checksum computes the header checksum of the complete record b (whose
// header is h) as a record of segment seq: seeded with seq from version 4.
func checksum(b []byte, h Header, seq uint64) uint32 {
	if h.Version >= VersionSeeded {
		return seededChecksum(b, covered(b, h), seq)
	}
	crc := crc32.Update(0, castagnoli, b[:28])
	return crc32.Update(crc, castagnoli, covered(b, h))
}

// AppendBlockSums appends the CRC-32C of each ChecksumBlock of payload.
func AppendBlockSums(dst, payload []byte) []byte {
	for len(payload) > 0 {
		n := min(len(payload), ChecksumBlock)
		dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(payload[:n], castagnoli))
		payload = payload[n:]
	}
	return dst
}

// VerifyBlocks checks payload bytes against their block checksums: data
// starts at a block boundary of the payload and covers whole blocks (the
// last may be the payload's shorter last block), sums holds 4 bytes per
// block of data. It returns the index, within data, of the first block
// that fails, or -1.
func VerifyBlocks(data, sums []byte) int {
	for i := 0; len(data) > 0; i++ {
		n := min(len(data), ChecksumBlock)
		if len(sums) < 4*(i+1) || crc32.Checksum(data[:n], castagnoli) != binary.LittleEndian.Uint32(sums[4*i:]) {
			return i
		}
		data = data[n:]
	}
	return -1
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
	// Bytes 24..28 are reserved (zero) before version 4 and the seq hint
	// from it.
	if b[4] == 0 || b[7] != 0 || (b[4] < VersionSeeded && binary.LittleEndian.Uint32(b[24:]) != 0) {
		return Header{}, fmt.Errorf("%w: bad version or reserved bytes", ErrCorrupt)
	}
	h := Header{
		Version:    b[4],
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

// Decode decodes the record at the start of b, read from segment seq, and
// verifies its checksums (of a data or copy record with block checksums:
// the header's and every block's). A version 4 record verifies only with
// the seq it was sealed for; older versions verify with any seq. The
// payload aliases b; it excludes the block checksums. It returns ErrTorn
// when b ends inside the record and ErrCorrupt when the record is damaged
// (or belongs to another segment).
func Decode(b []byte, seq uint64) (Header, []byte, error) {
	h, err := DecodeHeader(b)
	if err != nil {
		return Header{}, nil, err
	}
	if len(b) < h.RecordLen() {
		return Header{}, nil, ErrTorn
	}
	if h.Version >= VersionSeeded && binary.LittleEndian.Uint32(b[24:]) != uint32(seq) {
		return Header{}, nil, fmt.Errorf("%w: seq hint %#x is not of segment %d", ErrCorrupt, binary.LittleEndian.Uint32(b[24:]), seq)
	}
	if checksum(b, h, seq) != binary.LittleEndian.Uint32(b[28:]) {
		return Header{}, nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	payload := b[HeaderSize : HeaderSize+int(h.PayloadLen)]
	if h.HasBlockSums() {
		if i := VerifyBlocks(payload, covered(b, h)); i >= 0 {
			return Header{}, nil, fmt.Errorf("%w: checksum mismatch in payload block %d", ErrCorrupt, i)
		}
	}
	return h, payload, nil
}

// StaleSeq reports whether b starts with a complete, valid version 4 record
// of a segment before seq, and of which: the stale bytes that a recycled
// file holds past its new segment's end. The record's seq hint (the low 32
// bits of its segment's seq, bytes 24..28) names the one candidate below
// seq, so no search is needed.
func StaleSeq(b []byte, seq uint64) (uint64, bool) {
	h, err := DecodeHeader(b)
	if err != nil || h.Version < VersionSeeded || len(b) < h.RecordLen() {
		return 0, false
	}
	cand := seq&^0xffffffff | uint64(binary.LittleEndian.Uint32(b[24:]))
	if cand >= seq {
		if cand < 1<<32 {
			return 0, false
		}
		cand -= 1 << 32
	}
	if cand == 0 || checksum(b, h, cand) != binary.LittleEndian.Uint32(b[28:]) {
		return 0, false
	}
	return cand, true
}
