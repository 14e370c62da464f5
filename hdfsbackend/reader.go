package hdfsbackend

import (
	"io"
	"sync"

	"github.com/colinmarc/hdfs/v2"
)

// maxIdleHandles is how many library readers a Reader keeps for reuse.
const maxIdleHandles = 4

// reader reads one object. The library's FileReader is not safe for
// concurrent use (ReadAt seeks a shared position), so concurrent ReadAt
// calls each take their own FileReader, opened through the pool's clients
// in turn, and give it back for reuse.
type reader struct {
	s    *Store
	name string
	path string
	size int64 // length when opened; reads stop there

	// mu guards the fields below; no I/O happens under it.
	mu struct {
		sync.Mutex
		idle   []*fileHandle
		closed bool
	}
}

// fileHandle is one library reader and the client it reads through.
type fileHandle struct {
	pc *pooled
	f  *hdfs.FileReader
}

// Size implements objstore.Reader.
func (r *reader) Size() int64 { return r.size }

// ReadAt implements objstore.Reader: reads stop at Size, with io.EOF.
func (r *reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &opError{op: "read", name: r.name, cause: errNegativeOffset}
	}
	if len(p) == 0 && off <= r.size {
		return 0, nil
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := p
	if rest := r.size - off; int64(len(p)) > rest {
		want = p[:rest]
	}
	var n int
	for attempt := 0; ; attempt++ {
		h, err := r.take()
		if err != nil {
			return 0, err
		}
		n, err = h.f.ReadAt(want, off)
		if err != nil && err != io.EOF {
			nnConn := r.s.pool.namenodeConnErr(err)
			if nnConn {
				r.s.pool.retire(h.pc, err)
			}
			r.drop(h)
			// A read is idempotent: after a NameNode restart the handle's
			// connection is dead, and one retry on a new one works.
			if nnConn && attempt == 0 {
				continue
			}
			return n, wrapIO("read", r.name, err, nnConn, nil)
		}
		r.give(h)
		break
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// take returns an idle handle or opens a new one.
func (r *reader) take() (*fileHandle, error) {
	r.mu.Lock()
	if r.mu.closed {
		r.mu.Unlock()
		return nil, &opError{op: "read", name: r.name, kind: ErrClosed}
	}
	if n := len(r.mu.idle); n > 0 {
		h := r.mu.idle[n-1]
		r.mu.idle = r.mu.idle[:n-1]
		r.mu.Unlock()
		return h, nil
	}
	r.mu.Unlock()
	var fr *hdfs.FileReader
	pc, err := r.s.run("read", r.name, true, true, func(c *hdfs.Client) error {
		var err error
		fr, err = c.Open(r.path)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &fileHandle{pc: pc, f: fr}, nil
}

// give returns a handle for reuse, or closes it when enough are idle or
// the reader was closed meanwhile.
func (r *reader) give(h *fileHandle) {
	r.mu.Lock()
	if !r.mu.closed && len(r.mu.idle) < maxIdleHandles {
		r.mu.idle = append(r.mu.idle, h)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	r.drop(h)
}

func (r *reader) drop(h *fileHandle) {
	h.f.Close()
	r.s.pool.put(h.pc)
}

// Close implements objstore.Reader. ReadAt calls in progress finish.
func (r *reader) Close() error {
	r.mu.Lock()
	if r.mu.closed {
		r.mu.Unlock()
		return nil
	}
	r.mu.closed = true
	idle := r.mu.idle
	r.mu.idle = nil
	r.mu.Unlock()
	for _, h := range idle {
		r.drop(h)
	}
	return nil
}
