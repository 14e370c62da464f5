package rbddiff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Banners, one per format version (part of the format, never change).
const (
	BannerV1 = "rbd diff v1\n"
	BannerV2 = "rbd diff v2\n"
)

// Record tags (part of the format, never change).
const (
	TagFromSnap  byte = 'f'
	TagToSnap    byte = 't'
	TagProtected byte = 'p'
	TagSize      byte = 's'
	TagWrite     byte = 'w'
	TagZero      byte = 'z'
	TagEnd       byte = 'e'
)

// MaxNameLen bounds snapshot names, as `rbd import-diff` does.
const MaxNameLen = 4096

// Header is a stream's metadata.
type Header struct {
	// Version is 1 or 2.
	Version int
	// From is the snapshot the changes start from; "" for a full stream.
	From string
	// To is the snapshot the changes lead to; "" for the image's head.
	To string
	// Protected is the v2 'p' record's flag (RBD's snapshot protection).
	Protected bool
	// Size is the image size at the end point.
	Size uint64
}

// Kind tells a write from a zero record.
type Kind byte

// Record kinds.
const (
	Write Kind = Kind(TagWrite)
	Zero  Kind = Kind(TagZero)
)

// Record is a data record: Len bytes at Off are written (their data
// follows, read through Reader.Data) or zeroed.
type Record struct {
	Kind Kind
	Off  uint64
	Len  uint64
}

// Writer encodes a stream. Its methods return the first error of the
// underlying writer, sticky, and ErrClosed after Close.
type Writer struct {
	w   io.Writer
	v   int
	err error
	buf [25]byte
}

// NewWriter writes the banner of version 1 or 2 and h's metadata records
// ('f' when h.From is set, 't' when h.To is set, 'p' in v2 after 't', 's').
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	if h.Version != 1 && h.Version != 2 {
		return nil, fmt.Errorf("rbddiff: no format version %d", h.Version)
	}
	if len(h.From) > MaxNameLen || len(h.To) > MaxNameLen {
		return nil, fmt.Errorf("rbddiff: snapshot name longer than %d bytes", MaxNameLen)
	}
	wr := &Writer{w: w, v: h.Version}
	banner := BannerV1
	if h.Version == 2 {
		banner = BannerV2
	}
	wr.write([]byte(banner))
	if h.From != "" {
		wr.name(TagFromSnap, h.From)
	}
	if h.To != "" {
		wr.name(TagToSnap, h.To)
		if h.Version == 2 {
			b := wr.head(TagProtected, 1)
			p := byte(0)
			if h.Protected {
				p = 1
			}
			wr.write(append(b, p))
		}
	}
	b := wr.head(TagSize, 8)
	wr.write(binary.LittleEndian.AppendUint64(b, h.Size))
	return wr, wr.err
}

// head encodes a tag and, in v2, the length n of what follows, into buf.
func (w *Writer) head(tag byte, n uint64) []byte {
	b := append(w.buf[:0], tag)
	if w.v == 2 {
		b = binary.LittleEndian.AppendUint64(b, n)
	}
	return b
}

func (w *Writer) name(tag byte, s string) {
	b := w.head(tag, 4+uint64(len(s)))
	w.write(binary.LittleEndian.AppendUint32(b, uint32(len(s))))
	w.write([]byte(s))
}

func (w *Writer) write(b []byte) {
	if w.err == nil {
		_, w.err = w.w.Write(b)
	}
}

// Write appends a write record of data at off.
func (w *Writer) Write(off uint64, data []byte) error {
	b := w.head(TagWrite, 16+uint64(len(data)))
	b = binary.LittleEndian.AppendUint64(b, off)
	w.write(binary.LittleEndian.AppendUint64(b, uint64(len(data))))
	w.write(data)
	return w.err
}

// Zero appends a zero record of length bytes at off.
func (w *Writer) Zero(off, length uint64) error {
	b := w.head(TagZero, 16)
	b = binary.LittleEndian.AppendUint64(b, off)
	w.write(binary.LittleEndian.AppendUint64(b, length))
	return w.err
}

// Close appends the end record. It does not close the underlying writer.
func (w *Writer) Close() error {
	w.write([]byte{TagEnd})
	err := w.err
	if w.err == nil {
		w.err = ErrClosed
	}
	return err
}

// Reader decodes a stream. NewReader reads the banner and the metadata;
// Next then returns the data records in order.
type Reader struct {
	r       io.Reader
	h       Header
	pend    byte   // a data tag read by NewReader, not yet returned
	pendLen uint64 // its v2 length
	data    uint64 // unread data of the current write record
	done    bool
	offset  int64 // bytes consumed, for error messages
	buf     [16]byte
}

// NewReader reads the banner and the metadata records. Errors wrap
// ErrFormat or ErrTruncated.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{r: r}
	var banner [len(BannerV1)]byte
	if err := rd.full(banner[:]); err != nil {
		return nil, err
	}
	switch string(banner[:]) {
	case BannerV1:
		rd.h.Version = 1
	case BannerV2:
		rd.h.Version = 2
	default:
		return nil, fmt.Errorf("%w: not an rbd diff stream (banner %q)", ErrFormat, banner[:])
	}
	seen := map[byte]bool{}
	for {
		at := rd.offset
		tag, n, err := rd.tag()
		if err != nil {
			return nil, err
		}
		switch tag {
		case TagWrite, TagZero, TagEnd:
			if !seen[TagSize] {
				return nil, fmt.Errorf("%w: no size record before the data (offset %d)", ErrFormat, at)
			}
			rd.pend, rd.pendLen = tag, n
			return rd, nil
		case TagFromSnap, TagToSnap, TagSize, TagProtected:
			if seen[tag] {
				return nil, fmt.Errorf("%w: second %q record at offset %d", ErrFormat, tag, at)
			}
			seen[tag] = true
		}
		switch tag {
		case TagFromSnap, TagToSnap:
			s, err := rd.name(n, at)
			if err != nil {
				return nil, err
			}
			if tag == TagFromSnap {
				rd.h.From = s
			} else {
				rd.h.To = s
			}
		case TagSize:
			if err := rd.fixed(n, 8, tag, at); err != nil {
				return nil, err
			}
			rd.h.Size = binary.LittleEndian.Uint64(rd.buf[:8])
		case TagProtected:
			if rd.h.Version == 1 {
				return nil, fmt.Errorf("%w: unknown tag %q at offset %d", ErrFormat, tag, at)
			}
			if err := rd.fixed(n, 1, tag, at); err != nil {
				return nil, err
			}
			if rd.buf[0] > 1 {
				return nil, fmt.Errorf("%w: protection flag %d at offset %d", ErrFormat, rd.buf[0], at)
			}
			rd.h.Protected = rd.buf[0] == 1
		default:
			if err := rd.skipUnknown(tag, n, at); err != nil {
				return nil, err
			}
		}
	}
}

// Header returns the stream's metadata.
func (r *Reader) Header() Header { return r.h }

// Offset returns the number of stream bytes consumed so far.
func (r *Reader) Offset() int64 { return r.offset }

// Next returns the next data record; unread data of the previous write
// record is skipped first. After the end record it returns io.EOF. Errors
// wrap ErrFormat, ErrTruncated or ErrOutOfBounds, or are the underlying
// reader's.
func (r *Reader) Next() (Record, error) {
	if r.done {
		return Record{}, io.EOF
	}
	if r.data > 0 {
		if err := r.skip(r.data); err != nil {
			return Record{}, err
		}
		r.data = 0
	}
	for {
		at := r.offset
		var tag byte
		var n uint64
		if r.pend != 0 {
			tag, n, r.pend = r.pend, r.pendLen, 0
			at -= 1
			if r.h.Version == 2 && tag != TagEnd {
				at -= 8
			}
		} else {
			var err error
			if tag, n, err = r.tag(); err != nil {
				return Record{}, err
			}
		}
		switch tag {
		case TagEnd:
			r.done = true
			return Record{}, io.EOF
		case TagWrite, TagZero:
			if err := r.full(r.buf[:16]); err != nil {
				return Record{}, err
			}
			rec := Record{Kind: Kind(tag), Off: binary.LittleEndian.Uint64(r.buf[0:8]), Len: binary.LittleEndian.Uint64(r.buf[8:16])}
			if r.h.Version == 2 {
				want := uint64(16)
				if tag == TagWrite {
					if rec.Len > math.MaxUint64-16 {
						return Record{}, fmt.Errorf("%w: %q record of %d bytes at offset %d", ErrFormat, tag, rec.Len, at)
					}
					want += rec.Len
				}
				if n != want {
					return Record{}, fmt.Errorf("%w: %q record at offset %d: length %d, contents %d", ErrFormat, tag, at, n, want)
				}
			}
			if rec.Off > r.h.Size || rec.Len > r.h.Size-rec.Off {
				return Record{}, fmt.Errorf("%w: %q record at offset %d covers %d bytes at %d, image size %d", ErrOutOfBounds, tag, at, rec.Len, rec.Off, r.h.Size)
			}
			if tag == TagWrite {
				r.data = rec.Len
			}
			return rec, nil
		case TagFromSnap, TagToSnap, TagSize, TagProtected:
			return Record{}, fmt.Errorf("%w: %q record after data records at offset %d", ErrFormat, tag, at)
		default:
			if err := r.skipUnknown(tag, n, at); err != nil {
				return Record{}, err
			}
		}
	}
}

// Data reads the current write record's data into p, at most what remains
// of it; it returns io.EOF once all of it was read.
func (r *Reader) Data(p []byte) (int, error) {
	if r.data == 0 {
		return 0, io.EOF
	}
	if uint64(len(p)) > r.data {
		p = p[:r.data]
	}
	n, err := io.ReadFull(r.r, p)
	r.offset += int64(n)
	r.data -= uint64(n)
	if err != nil {
		return n, r.eofErr(err)
	}
	return n, nil
}

// Trailing reports whether bytes follow the end record (reading at most
// one of them); it returns false before the end record was read.
func (r *Reader) Trailing() (bool, error) {
	if !r.done {
		return false, nil
	}
	var b [1]byte
	n, err := io.ReadFull(r.r, b[:])
	if n == 1 {
		return true, nil
	}
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	return false, err
}

// tag reads a tag and, in v2 except for the end tag, its length.
func (r *Reader) tag() (byte, uint64, error) {
	if err := r.full(r.buf[:1]); err != nil {
		return 0, 0, err
	}
	tag := r.buf[0]
	if r.h.Version == 1 || tag == TagEnd {
		return tag, 0, nil
	}
	if err := r.full(r.buf[:8]); err != nil {
		return 0, 0, err
	}
	return tag, binary.LittleEndian.Uint64(r.buf[:8]), nil
}

// name reads a snapshot name record's contents (v2 length n).
func (r *Reader) name(n uint64, at int64) (string, error) {
	if err := r.full(r.buf[:4]); err != nil {
		return "", err
	}
	l := uint64(binary.LittleEndian.Uint32(r.buf[:4]))
	if l == 0 || l > MaxNameLen {
		return "", fmt.Errorf("%w: snapshot name of %d bytes at offset %d", ErrFormat, l, at)
	}
	if r.h.Version == 2 && n != 4+l {
		return "", fmt.Errorf("%w: name record at offset %d: length %d, contents %d", ErrFormat, at, n, 4+l)
	}
	b := make([]byte, l)
	if err := r.full(b); err != nil {
		return "", err
	}
	return string(b), nil
}

// fixed reads a record of size bytes into buf, checking a v2 length n.
func (r *Reader) fixed(n, size uint64, tag byte, at int64) error {
	if r.h.Version == 2 && n != size {
		return fmt.Errorf("%w: %q record at offset %d: length %d, contents %d", ErrFormat, tag, at, n, size)
	}
	return r.full(r.buf[:size])
}

// skipUnknown skips a record this package does not know: possible in v2
// only.
func (r *Reader) skipUnknown(tag byte, n uint64, at int64) error {
	if r.h.Version == 1 {
		return fmt.Errorf("%w: unknown tag %q at offset %d", ErrFormat, tag, at)
	}
	return r.skip(n)
}

// full reads exactly len(b) bytes.
func (r *Reader) full(b []byte) error {
	n, err := io.ReadFull(r.r, b)
	r.offset += int64(n)
	if err != nil {
		return r.eofErr(err)
	}
	return nil
}

// skip discards n bytes.
func (r *Reader) skip(n uint64) error {
	if n > math.MaxInt64 {
		return fmt.Errorf("%w: record of %d bytes at offset %d", ErrTruncated, n, r.offset)
	}
	m, err := io.CopyN(io.Discard, r.r, int64(n))
	r.offset += m
	if err != nil {
		return r.eofErr(err)
	}
	return nil
}

// eofErr turns an end of input into ErrTruncated.
func (r *Reader) eofErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w (after %d bytes)", ErrTruncated, r.offset)
	}
	return err
}
