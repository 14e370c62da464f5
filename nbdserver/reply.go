package nbdserver

import (
	"bufio"
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// replyWriter serialises the replies of one connection. Workers write whole
// replies under mu, so replies never interleave; the last writer of a burst
// (no other writer waiting) flushes, so replies of concurrent requests share
// syscalls while a lone reply goes out at once.
type replyWriter struct {
	// waiting counts writers holding or queued for mu.
	waiting atomic.Int32
	// onError runs once, under mu, on the first write error (it closes the
	// connection so that the reading goroutine stops too).
	onError func(error)
	// mu guards the buffered writer; socket writes happen under it.
	mu struct {
		sync.Mutex
		bw  *bufio.Writer
		err error // sticky: after the first failure nothing is written
		hdr [chunkHeaderSize + offsetDataHeaderSize + errorChunkHeaderSize]byte
	}
}

// lock queues for the writer.
func (w *replyWriter) lock() {
	w.waiting.Add(1)
	w.mu.Lock()
}

// unlock flushes if no other reply is queued, then releases the writer.
func (w *replyWriter) unlock() {
	if w.waiting.Add(-1) == 0 && w.mu.err == nil {
		if err := w.mu.bw.Flush(); err != nil {
			w.failLocked(err)
		}
	}
	w.mu.Unlock()
}

// writeLocked writes b unless an earlier write failed.
func (w *replyWriter) writeLocked(b []byte) {
	if w.mu.err != nil {
		return
	}
	if _, err := w.mu.bw.Write(b); err != nil {
		w.failLocked(err)
	}
}

// failLocked records the first write error.
func (w *replyWriter) failLocked(err error) {
	if w.mu.err == nil {
		w.mu.err = err
		if w.onError != nil {
			w.onError(err)
		}
	}
}

// simple sends a simple reply without payload.
func (w *replyWriter) simple(cookie uint64, errno uint32) {
	w.lock()
	putSimpleReply(w.mu.hdr[:], errno, cookie)
	w.writeLocked(w.mu.hdr[:simpleReplySize])
	w.unlock()
}

// read sends the successful reply to NBD_CMD_READ: a simple reply followed by
// the data, or one NBD_REPLY_TYPE_OFFSET_DATA chunk flagged done (an
// NBD_REPLY_TYPE_NONE chunk for an empty read).
func (w *replyWriter) read(cookie uint64, structured bool, off uint64, data []byte) {
	w.lock()
	switch {
	case !structured:
		putSimpleReply(w.mu.hdr[:], 0, cookie)
		w.writeLocked(w.mu.hdr[:simpleReplySize])
	case len(data) == 0:
		putChunkHeader(w.mu.hdr[:], chunkFlagDone, chunkNone, cookie, 0)
		w.writeLocked(w.mu.hdr[:chunkHeaderSize])
	default:
		putChunkHeader(w.mu.hdr[:], chunkFlagDone, chunkOffsetData, cookie,
			uint32(offsetDataHeaderSize+len(data)))
		binary.BigEndian.PutUint64(w.mu.hdr[chunkHeaderSize:], off)
		w.writeLocked(w.mu.hdr[:chunkHeaderSize+offsetDataHeaderSize])
	}
	w.writeLocked(data)
	w.unlock()
}

// error sends a failure: a simple reply carrying errno, or with structured
// replies an NBD_REPLY_TYPE_ERROR chunk flagged done with msg.
func (w *replyWriter) error(cookie uint64, structured bool, errno uint32, msg string) {
	if !structured {
		w.simple(cookie, errno)
		return
	}
	if len(msg) > maxStringLen {
		msg = msg[:maxStringLen]
	}
	w.lock()
	putChunkHeader(w.mu.hdr[:], chunkFlagDone, chunkError, cookie,
		uint32(errorChunkHeaderSize+len(msg)))
	binary.BigEndian.PutUint32(w.mu.hdr[chunkHeaderSize:], errno)
	binary.BigEndian.PutUint16(w.mu.hdr[chunkHeaderSize+4:], uint16(len(msg)))
	w.writeLocked(w.mu.hdr[:chunkHeaderSize+errorChunkHeaderSize])
	if w.mu.err == nil {
		if _, err := w.mu.bw.WriteString(msg); err != nil {
			w.failLocked(err)
		}
	}
	w.unlock()
}
