// Package rbddiff reads and writes Ceph RBD's incremental backup stream,
// the format of `rbd export-diff` / `rbd import-diff` (docs.ceph.com,
// dev/rbd-diff): the changes between two points of one image. It is a pure
// codec: no I/O of its own beyond the io.Reader or io.Writer it is given,
// no knowledge of hlfs.
//
// # Format
//
// All integers are little-endian. A stream is a banner, metadata records,
// data records and an end record:
//
//	banner   "rbd diff v1\n" or "rbd diff v2\n" (12 bytes)
//	record   tag u8, then in v2 (except for 'e') a u64 length of what follows
//	'f'      from snapshot: name length u32, name          (v2 length 4+n)
//	't'      to snapshot: name length u32, name            (v2 length 4+n)
//	'p'      v2 only: to snapshot is protected, u8 0 or 1  (v2 length 1)
//	's'      image size at the end point, u64              (v2 length 8)
//	'w'      write: offset u64, length u64, length bytes   (v2 length 16+length)
//	'z'      zero: offset u64, length u64                  (v2 length 16)
//	'e'      end; nothing follows it
//
// Metadata records ('f', 't', 'p', 's') come before the data records ('w',
// 'z'). A stream without 'f' holds the whole image at its end point (a
// full export); without 't' its end point is the image's head rather than
// a snapshot. v2 readers skip records with unknown tags by their length; v1
// has no lengths, so an unknown tag there is an error. `rbd export-diff`
// writes v1 and `rbd import-diff` reads only v1; v2 is what
// `rbd export --export-format 2` embeds. This package reads both and
// writes either.
//
// # Checks
//
// The Reader refuses, with errors wrapping ErrFormat, ErrTruncated or
// ErrOutOfBounds: a wrong banner, a v2 length that disagrees with the
// record's contents, a snapshot name longer than MaxNameLen or empty,
// metadata after data, a repeated metadata record, a missing size record,
// a write or zero past the size record's end, and bytes ending before the
// end record. The format has no checksum: a flipped bit inside data, or in
// an offset that stays in bounds, cannot be detected.
//
// Reader and Writer are not safe for concurrent use.
package rbddiff
