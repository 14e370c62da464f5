package objstore

import (
	"errors"
	"fmt"
	"io"
)

// Store holds named objects. Names are slash-separated paths without leading
// slash, "." or ".." elements.
type Store interface {
	// Create makes a new object for writing. It fails with ErrExist when the
	// name exists: two writers can never share an object (a fencing
	// primitive). The name is durable on return (a crash leaves at least an
	// empty object); the bytes are durable after Sync, Persist, or Close on
	// stores without Sync.
	Create(name string) (Writer, error)
	// Open opens an object for reading. ErrNotExist when absent. An object
	// still being written may show only a prefix of what was written.
	Open(name string) (Reader, error)
	// List returns the names of the entries (objects and folders) directly
	// inside folder dir ("" is the root), sorted, without the dir prefix. A
	// missing folder lists as empty; an object lists as ErrNotFolder.
	List(dir string) ([]string, error)
	// Remove deletes an object or an empty folder. ErrNotExist when absent.
	Remove(name string) error
	// Rename moves an object, atomically replacing any object at to, and is
	// durable on return. ErrNotExist when from is absent.
	Rename(from, to string) error
	// Persist makes the current contents and the name of an existing,
	// possibly unclosed, object durable: closed segments before a flush, and
	// the last segment a crashed writer left behind. ErrNotExist when absent.
	Persist(name string) error
}

// Writer appends to a new object. It is not safe for concurrent use.
type Writer interface {
	// Write appends p. The bytes may sit in buffers until Sync or Close.
	io.Writer
	// Sync makes every byte written so far, and the object's name, durable.
	// It returns ErrSyncUnsupported on stores that can only make an object
	// durable by closing it.
	Sync() error
	// Close completes the object: it can be read in full from now on. It is
	// durable only on stores whose Sync returns ErrSyncUnsupported; elsewhere
	// call Sync first or Persist later. After a failed Close the object's
	// contents are undefined; callers abandon it.
	Close() error
}

// BuffersWriter is implemented by writers that write several buffers in one
// call (DirStore: writev), saving a system call per buffer.
type BuffersWriter interface {
	// WriteBuffers appends the buffers in order, as Write of each would.
	WriteBuffers(bufs [][]byte) error
}

// WriteBuffers appends bufs to w in one call where w can, else one Write
// per buffer.
func WriteBuffers(w Writer, bufs [][]byte) error {
	if bw, ok := w.(BuffersWriter); ok {
		return bw.WriteBuffers(bufs)
	}
	for _, b := range bufs {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// Reader reads a closed (or, with the caveat on Open, an open) object.
// ReadAt is safe for concurrent use.
type Reader interface {
	// ReadAt follows io.ReaderAt: a short read returns io.EOF.
	io.ReaderAt
	// Size is the object's length when opened.
	Size() int64
	// Close releases the reader.
	Close() error
}

// CloseDurably syncs (where the store can) and closes w: on return the
// object is complete and durable on every store.
func CloseDurably(w Writer) error {
	err := w.Sync()
	if errors.Is(err, ErrSyncUnsupported) {
		err = nil
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadAll reads a whole object.
func ReadAll(st Store, name string) ([]byte, error) {
	r, err := st.Open(name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b := make([]byte, r.Size())
	if _, err := r.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && len(b) == 0) {
		return nil, fmt.Errorf("objstore: read %s: %w", name, err)
	}
	return b, nil
}

// WriteAll creates name holding b, durably (CloseDurably).
func WriteAll(st Store, name string, b []byte) error {
	w, err := st.Create(name)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		_ = w.Close()
		return err
	}
	return CloseDurably(w)
}
