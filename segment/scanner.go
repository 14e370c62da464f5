package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// Scanner walks the records of a segment held in memory, starting at an
// offset. Use it as:
//
//	sc := segment.NewScanner(buf, off, seq)
//	for sc.Next() { use(sc.Offset(), sc.Header(), sc.Payload()) }
//	if err := sc.Err(); err != nil { ... } // ErrTorn or ErrCorrupt at sc.Offset()
type Scanner struct {
	buf     []byte
	seq     uint64
	off     int
	next    int
	hdr     Header
	payload []byte
	err     error
}

// NewScanner returns a scanner over buf, the bytes of segment seq, starting
// at off. Records are verified as records of seq (Decode): a version 4
// record sealed for another segment stops the scan with ErrCorrupt.
func NewScanner(buf []byte, off int, seq uint64) *Scanner {
	return &Scanner{buf: buf, seq: seq, off: off, next: off}
}

// Next advances to the next record. It returns false at the end of buf (Err
// is nil) or at a bad record (Err says why; Offset is where it starts).
func (s *Scanner) Next() bool {
	if s.err != nil {
		return false
	}
	s.off = s.next
	if s.off >= len(s.buf) {
		return false
	}
	h, p, err := Decode(s.buf[s.off:], s.seq)
	if err != nil {
		s.err = err
		return false
	}
	s.hdr, s.payload = h, p
	s.next = s.off + h.RecordLen()
	return true
}

// Offset is where the current record (or the bad one, after an error) starts;
// after a clean end it equals len(buf).
func (s *Scanner) Offset() int { return s.off }

// End is the offset just past the current record.
func (s *Scanner) End() int { return s.next }

// Header is the current record's header.
func (s *Scanner) Header() Header { return s.hdr }

// Payload is the current record's payload; it aliases the buffer.
func (s *Scanner) Payload() []byte { return s.payload }

// Err is the error that stopped the scan, nil at a clean end.
func (s *Scanner) Err() error { return s.err }

// ValidRecordAfter reports whether a complete record with a valid checksum
// for segment seq (or of a newer version) starts anywhere in buf, the bytes
// of segment seq, after offset from. A bad record followed by a valid one
// is damage in the middle of a segment, not a torn tail; records sealed
// for another segment (the stale tail of a reused file) are not valid.
func ValidRecordAfter(buf []byte, from int, seq uint64) bool {
	return recordFrom(buf, from+1, func(b []byte) bool {
		_, _, err := Decode(b, seq)
		return err == nil || errors.Is(err, ErrNewerVersion)
	})
}

// StaleRecordFrom reports whether the first record found in buf at or
// after offset from that is valid in any segment (ErrTorn bytes and garbage
// skipped) is a record of a segment before seq (StaleSeq): the old bytes a
// recycled file holds past the end of segment seq's part of the log.
func StaleRecordFrom(buf []byte, from int, seq uint64) bool {
	return recordFrom(buf, from, func(b []byte) bool {
		_, ok := StaleSeq(b, seq)
		return ok
	})
}

// recordFrom reports whether found holds for the bytes at some record
// magic in buf at or after offset from.
func recordFrom(buf []byte, from int, found func(b []byte) bool) bool {
	var magic [4]byte
	binary.LittleEndian.PutUint32(magic[:], Magic)
	for i := max(from, 0); i < len(buf); i++ {
		j := bytes.Index(buf[i:], magic[:])
		if j < 0 {
			return false
		}
		i += j
		if found(buf[i:]) {
			return true
		}
	}
	return false
}
