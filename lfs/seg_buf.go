package lfs

import (
	"io"
	"sync"
)

// segBuf holds the bytes of an in-memory segment in chunks, so that a
// segment costs memory as it fills rather than its full size up front: an
// idle volume's active segment holding only its header takes a few hundred
// bytes, not 32 MiB. Chunks grow geometrically to segChunk and never move:
// bytes below n never change once appended, and a copy of the segBuf value
// taken under the log lock (a snapshot) can be read after the lock is
// dropped while appends go on.
//
// Invariant: every chunk has len == cap (chunks are never resliced); all
// chunks but the last are full; n <= size, the sum of their lengths.
type segBuf struct {
	chunks [][]byte
	n      int
	size   int // the sum of the chunks' lengths
}

const (
	// segChunk is the largest chunk: it bounds the unused tail of each
	// in-memory segment, and store writes are at most this long.
	segChunk = 256 << 10
	// minChunk is the first chunk after the one holding the header.
	minChunk = 16 << 10
)

// chunkPool recycles full-size chunks of closed segments.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, segChunk); return &b }}

func (b *segBuf) len() int { return b.n }

// append copies p to the end, adding chunks as needed.
func (b *segBuf) append(p []byte) {
	for len(p) > 0 {
		if b.n < b.size { // room in the last chunk
			last := b.chunks[len(b.chunks)-1]
			c := copy(last[len(last)-(b.size-b.n):], p)
			b.n += c
			p = p[c:]
			continue
		}
		size := len(p) // the first chunk fits the segment header exactly
		if k := len(b.chunks); k > 0 {
			size = min(max(2*len(b.chunks[k-1]), minChunk), segChunk)
		}
		var c []byte
		if size == segChunk {
			c = *chunkPool.Get().(*[]byte)
		} else {
			c = make([]byte, size)
		}
		b.chunks = append(b.chunks, c)
		b.size += len(c)
	}
}

// locate returns the chunk holding byte off and the offset in it; i ==
// len(chunks) when off is at or past the end of the last chunk.
func (b *segBuf) locate(off int) (i, in int) {
	for i, c := range b.chunks {
		if off < len(c) {
			return i, off
		}
		off -= len(c)
	}
	return len(b.chunks), off
}

// readAt copies bytes [off, off+len(p)) into p; the range must lie below n.
func (b *segBuf) readAt(p []byte, off int) {
	i, in := b.locate(off)
	for len(p) > 0 {
		c := copy(p, b.chunks[i][in:])
		p, i, in = p[c:], i+1, 0
	}
}

// writeTo writes bytes [from, n) to w, a chunk at a time.
func (b *segBuf) writeTo(w io.Writer, from int) error {
	i, in := b.locate(from)
	left := b.n - from
	for left > 0 {
		c := b.chunks[i][in:min(len(b.chunks[i]), in+left)]
		if _, err := w.Write(c); err != nil {
			return err
		}
		left -= len(c)
		i, in = i+1, 0
	}
	return nil
}

// bytes returns a copy of the contents (tests).
func (b *segBuf) bytes() []byte {
	p := make([]byte, b.n)
	b.readAt(p, 0)
	return p
}

// free returns full-size chunks to the pool. Nobody may use b afterwards.
func (b *segBuf) free() {
	for _, c := range b.chunks {
		if len(c) == segChunk {
			chunkPool.Put(&c)
		}
	}
	b.chunks, b.n, b.size = nil, 0, 0
}
