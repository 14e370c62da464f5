// Package segment is the log format of hlfs: records appended to segment
// objects. It encodes and decodes records and scans a segment's bytes; it
// knows nothing of volumes, maps or stores.
//
// Record layout (part of the format, never change; see docs/format.md):
//
//	 0  4  magic "HLR1"
//	 4  1  format version (4, given by Seal; Append encodes 3: data and
//	       copy, 1: the others; 1, 2, 3 read)
//	 5  1  type (TypeSegmentHeader, TypeData, TypeHole, TypeMeta, TypeCopy)
//	 6  1  flags (FlagSnappy)
//	 7  1  reserved, zero
//	 8  8  address: volume byte offset, or segment seq for a segment header
//	16  4  logical length in volume bytes
//	20  4  payload length
//	24  4  reserved, zero
//	28  4  CRC-32C of bytes 0..28 and the payload (versions 1, 2), or of
//	       bytes 0..28 and the block checksums (version 3 data and copy);
//	       version 4: of the segment's seq (8 bytes), bytes 0..28, and the
//	       block checksums (data and copy) or the payload (the others)
//	32     payload
//	       versions 3, 4 data and copy: a CRC-32C per ChecksumBlock of payload
//
// A version 4 record validates only in the segment whose seq seeded its
// checksum, so stale records left in a reused segment file never validate
// in the segment that reuses it: readers pass the seq of the segment they
// read (Decode, NewScanner, ValidRecordAfter, DecodeSegmentHeader).
//
// All functions are pure and safe for concurrent use.
package segment
