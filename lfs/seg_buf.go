package lfs

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/hlfs/hlfs/internal/objstore"
)

// segBuf holds the bytes of an in-memory segment as a sequence of spans:
// parts of chunks it owns, which grow geometrically to segChunk as the
// segment fills (an idle volume's active segment holding only its header
// takes a few hundred bytes, not 32 MiB), and large write payloads it
// keeps by reference instead of copying them (keep). Spans never move or
// change: bytes below n never change once appended, and a copy of the
// segBuf value taken under the log lock (a snapshot) can be read after
// the lock is dropped while appends go on.
type segBuf struct {
	// spans are the bytes before the open span, in order; ends[i] is the
	// offset after spans[i]. Appends only add elements, never change one.
	spans [][]byte
	ends  []int
	// cur is the owned chunk being filled (len == cap); the open span
	// cur[from:used()] holds the last bytes.
	cur  []byte
	from int
	n    int
	// pooled are the chunks taken from chunkPool, kept the payloads held,
	// both given back by free.
	pooled [][]byte
	kept   []*keptPayload
}

const (
	// segChunk is the largest chunk: it bounds the unused tail of each
	// in-memory segment.
	segChunk = 256 << 10
	// minChunk is the first chunk after the one holding the header.
	minChunk = 16 << 10
	// keepMin is the least payload a segment keeps by reference rather
	// than copies: below it the span costs more than the copy saves.
	keepMin = 16 << 10
)

// keptByReference reports whether an append with a keptPayload keeps this
// payload by reference (keepMin); keepsMostOf counts by the same rule.
func keptByReference(payload []byte) bool { return len(payload) >= keepMin }

// chunkPool recycles full-size chunks of closed segments.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, segChunk); return &b }}

func (b *segBuf) len() int { return b.n }

// spanned is the number of bytes in spans (before the open span).
func (b *segBuf) spanned() int {
	if len(b.ends) == 0 {
		return 0
	}
	return b.ends[len(b.ends)-1]
}

// used is the end of the open span in cur.
func (b *segBuf) used() int { return b.from + b.n - b.spanned() }

// append copies p to the end, adding chunks as needed.
func (b *segBuf) append(p []byte) {
	for len(p) > 0 {
		if used := b.used(); used < len(b.cur) {
			c := copy(b.cur[used:], p)
			b.n += c
			p = p[c:]
			continue
		}
		b.closeSpan()
		size := len(p) // the first chunk fits the segment header exactly
		if b.cur != nil {
			size = min(max(2*len(b.cur), minChunk), segChunk)
		}
		var c []byte
		if size == segChunk {
			c = *chunkPool.Get().(*[]byte)
			b.pooled = append(b.pooled, c)
		} else {
			c = make([]byte, size)
		}
		b.cur, b.from = c, 0
	}
}

// keep appends p by reference: p must not change until k's holders let go,
// and the segment holds k until free.
func (b *segBuf) keep(p []byte, k *keptPayload) {
	b.closeSpan()
	b.spans = append(b.spans, p[:len(p):len(p)])
	b.n += len(p)
	b.ends = append(b.ends, b.n)
	k.hold()
	b.kept = append(b.kept, k)
}

// closeSpan ends the open span: it becomes the last of spans, and bytes
// appended later to cur start a new one.
func (b *segBuf) closeSpan() {
	used := b.used()
	if used == b.from {
		return
	}
	b.spans = append(b.spans, b.cur[b.from:used:used])
	b.ends = append(b.ends, b.n)
	b.from = used
}

// each calls fn with the bytes [off, end) in order, a span at a time; the
// range must lie below n.
func (b *segBuf) each(off, end int, fn func(p []byte)) {
	for i := sort.SearchInts(b.ends, off+1); i < len(b.spans) && off < end; i++ {
		start := b.ends[i] - len(b.spans[i])
		p := b.spans[i][off-start : min(len(b.spans[i]), end-start)]
		fn(p)
		off += len(p)
	}
	if off < end {
		at := b.from + off - b.spanned()
		fn(b.cur[at : at+end-off])
	}
}

// readAt copies bytes [off, off+len(p)) into p; the range must lie below n.
func (b *segBuf) readAt(p []byte, off int) {
	b.each(off, off+len(p), func(s []byte) { p = p[copy(p, s):] })
}

// writeTo writes bytes [from, n) to w in one call where the store can
// (objstore.WriteBuffers: writev on the local store).
func (b *segBuf) writeTo(w objstore.Writer, from int) error {
	var bufs [][]byte
	b.each(from, b.n, func(p []byte) { bufs = append(bufs, p) })
	return objstore.WriteBuffers(w, bufs)
}

// bytes returns a copy of the contents (tests).
func (b *segBuf) bytes() []byte {
	p := make([]byte, b.n)
	b.readAt(p, 0)
	return p
}

// free returns pooled chunks to the pool and lets go of kept payloads.
// Nobody may use b afterwards.
func (b *segBuf) free() {
	for _, c := range b.pooled {
		chunkPool.Put(&c)
	}
	for _, k := range b.kept {
		k.drop()
	}
	*b = segBuf{}
}

// keptPayload is a client write's payload that in-memory segments hold by
// reference (segBuf.keep) instead of copying it. The writer holds it too
// while it appends; release runs, once, when the last holder lets go (a
// segment lets go when the store has it; one dropped with its log writer
// never does, and the garbage collector takes the payload).
type keptPayload struct {
	holders atomic.Int32
	release func()
}

// newKeptPayload returns a payload held by its caller, who drops it once
// done appending.
func newKeptPayload(release func()) *keptPayload {
	k := &keptPayload{release: release}
	k.holders.Store(1)
	return k
}

func (k *keptPayload) hold() { k.holders.Add(1) }

func (k *keptPayload) drop() {
	if k.holders.Add(-1) == 0 {
		k.release()
	}
}
