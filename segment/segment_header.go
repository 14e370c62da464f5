package segment

import (
	"encoding/binary"
	"fmt"
)

// SegmentHeader is the payload of the first record of every segment.
type SegmentHeader struct {
	VolumeUID uint64
	Seq       uint64
	Epoch     uint64 // owner epoch of the writer
	PrevSeq   uint64 // previous segment of the log, 0 for none
	PrevEnd   uint64 // valid length of the previous segment
	Created   int64  // Unix nanoseconds
}

// AppendSegmentHeader encodes sh as a complete record, version 1 like
// Append; the log writer seals it (Seal) for sh.Seq.
func AppendSegmentHeader(dst []byte, sh SegmentHeader) []byte {
	var p [SegmentHeaderPayloadLen]byte
	binary.LittleEndian.PutUint64(p[0:], sh.VolumeUID)
	binary.LittleEndian.PutUint64(p[8:], sh.Seq)
	binary.LittleEndian.PutUint64(p[16:], sh.Epoch)
	binary.LittleEndian.PutUint64(p[24:], sh.PrevSeq)
	binary.LittleEndian.PutUint64(p[32:], sh.PrevEnd)
	binary.LittleEndian.PutUint64(p[40:], uint64(sh.Created))
	return Append(dst, Header{Type: TypeSegmentHeader, Addr: sh.Seq}, p[:])
}

// DecodeSegmentHeader decodes the record at the start of b, the bytes of
// segment seq, which must be a segment header record. seq is the seq the
// reader expects (from the object name), never one read from b: a version 4
// header sealed for another segment fails with ErrCorrupt. Callers check
// that the header's Seq is seq (older versions are not seeded).
func DecodeSegmentHeader(b []byte, seq uint64) (SegmentHeader, error) {
	h, p, err := Decode(b, seq)
	if err != nil {
		return SegmentHeader{}, err
	}
	if h.Type != TypeSegmentHeader {
		return SegmentHeader{}, fmt.Errorf("%w: first record is type %d, not a segment header", ErrCorrupt, h.Type)
	}
	sh := SegmentHeader{
		VolumeUID: binary.LittleEndian.Uint64(p[0:]),
		Seq:       binary.LittleEndian.Uint64(p[8:]),
		Epoch:     binary.LittleEndian.Uint64(p[16:]),
		PrevSeq:   binary.LittleEndian.Uint64(p[24:]),
		PrevEnd:   binary.LittleEndian.Uint64(p[32:]),
		Created:   int64(binary.LittleEndian.Uint64(p[40:])),
	}
	if sh.Seq != h.Addr {
		return SegmentHeader{}, fmt.Errorf("%w: segment header seq %d differs from record address %d", ErrCorrupt, sh.Seq, h.Addr)
	}
	return sh, nil
}

// SegmentHeaderLen is the encoded size of a segment header record.
const SegmentHeaderLen = HeaderSize + SegmentHeaderPayloadLen
