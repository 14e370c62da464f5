package hdfsbackend

import (
	"io"
	"time"

	"github.com/colinmarc/hdfs/v2"
	"github.com/hlfs/hlfs/internal/objstore"
)

// fileWriter is what writer needs of *hdfs.FileWriter (a seam for tests).
type fileWriter interface {
	io.Writer
	Close() error
}

// writer streams one new object to the DataNodes. It keeps a sticky error:
// after the first failure every call returns it. The library has no
// DataNode pipeline recovery, so a DataNode lost mid-write fails the
// writer; the caller abandons the object and writes a new one.
type writer struct {
	s    *Store
	name string
	pc   *pooled // held until Close: its client renews the object's lease
	f    fileWriter
	err  error // sticky
	done bool  // Close was called
}

// Write implements objstore.Writer. Bytes go out in 64 KiB packets as they
// fill; none is durable before Close.
func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, &opError{op: "write", name: w.name, kind: ErrClosed}
	}
	n, err := w.f.Write(p)
	if err != nil {
		w.fail("write", err)
		return n, w.err
	}
	return n, nil
}

// Sync implements objstore.Writer: HDFS makes an object durable only by
// closing it (the library has no hflush/hsync), so Sync returns
// objstore.ErrSyncUnsupported, or the sticky error.
func (w *writer) Sync() error {
	if w.err != nil {
		return w.err
	}
	return objstore.ErrSyncUnsupported
}

// Close implements objstore.Writer: it sends the last packets, waits for
// the DataNodes' acknowledgements and completes the file at the NameNode,
// retrying with backoff while the NameNode answers that the last block has
// not reached its minimum replication yet. On nil the object is complete
// and durable.
func (w *writer) Close() error {
	if w.done {
		if w.err != nil {
			return w.err
		}
		return &opError{op: "close", name: w.name, kind: ErrClosed}
	}
	w.done = true
	defer w.s.closed(w.name)
	defer w.s.pool.put(w.pc)
	if w.err != nil {
		return w.err
	}
	b := newBackoff(50*time.Millisecond, 2*time.Second, w.s.opts.CloseRetryTimeout)
	retries := 0
	err := retryWhile(w.f.Close, func(err error) bool {
		if !hdfs.IsErrReplicating(err) {
			return false
		}
		retries++
		return true
	}, b, w.s.sleep)
	if retries > 0 {
		w.s.log.Debug("hdfsbackend: close retried while the last block replicated",
			"object", w.name, "retries", retries, "ok", err == nil)
	}
	if err != nil {
		w.fail("close", err)
		return w.err
	}
	return nil
}

// fail records the sticky error. A failed connection to the NameNode also
// retires the client: other calls reconnect (this writer is lost anyway).
func (w *writer) fail(op string, err error) {
	nnConn := w.s.pool.namenodeConnErr(err)
	if nnConn {
		w.s.pool.retire(w.pc, err)
	}
	w.err = wrapIO(op, w.name, err, nnConn, ErrPipeline)
}
