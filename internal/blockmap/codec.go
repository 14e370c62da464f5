package blockmap

import "encoding/binary"

// ExtentLen is the size of an encoded extent.
//
// Extent encoding (part of the format, never change; docs/format.md):
//
//	 0  8  volume offset
//	 8  4  length
//	12  4  segment seq
//	16  4  payload offset in the segment
//	20  4  payload length
//	24  4  skip: bytes of the record's data before the extent's first
//	28  1  flags: bit 0 snappy, bit 1 copy record, bit 2 block checksums
//	29  2  branch
//	31  1  reserved, 0
const ExtentLen = 32

// EncodeExtent writes e into b[:ExtentLen].
func EncodeExtent(b []byte, e Extent) {
	binary.LittleEndian.PutUint64(b[0:], uint64(e.Off))
	binary.LittleEndian.PutUint32(b[8:], e.Length)
	binary.LittleEndian.PutUint32(b[12:], e.Seq)
	binary.LittleEndian.PutUint32(b[16:], e.PayOff)
	binary.LittleEndian.PutUint32(b[20:], e.PayLen)
	binary.LittleEndian.PutUint32(b[24:], e.Skip)
	b[28] = e.Flags
	binary.LittleEndian.PutUint16(b[29:], e.Branch)
	b[31] = 0
}

// DecodeExtent reads the extent in b[:ExtentLen]. It checks nothing: the
// caller checks the extent against its neighbours and the volume (Check).
func DecodeExtent(b []byte) Extent {
	return Extent{
		Off:    int64(binary.LittleEndian.Uint64(b[0:])),
		Length: binary.LittleEndian.Uint32(b[8:]),
		Seq:    binary.LittleEndian.Uint32(b[12:]),
		PayOff: binary.LittleEndian.Uint32(b[16:]),
		PayLen: binary.LittleEndian.Uint32(b[20:]),
		Skip:   binary.LittleEndian.Uint32(b[24:]),
		Flags:  b[28],
		Branch: binary.LittleEndian.Uint16(b[29:]),
	}
}
