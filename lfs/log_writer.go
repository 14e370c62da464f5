package lfs

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
)

// logPos is a position in the log: a byte offset in a segment.
type logPos struct {
	seq uint64
	off int64
}

func (p logPos) less(q logPos) bool {
	return p.seq < q.seq || (p.seq == q.seq && p.off < q.off)
}

// memSegment is a segment whose bytes are held in memory until the store has
// it durably (closed): reads of it are served from buf. Bytes below len(buf)
// never change once appended.
type memSegment struct {
	seq    uint64
	buf    []byte
	sealed bool   // no more appends; len(buf) is final
	prev   logPos // end of the previous segment, where the log stood before this one
}

// endPos is the position after the segment's last record; for a segment
// holding only its header that is the end of the previous one, so positions
// never name a segment that may not exist in the store.
func (s *memSegment) endPos() logPos {
	if len(s.buf) == segment.SegmentHeaderLen {
		return s.prev
	}
	return logPos{s.seq, int64(len(s.buf))}
}

// logWriter appends records to the volume's log and makes them durable.
//
// Appends are memory copies under mu; store I/O happens under ioMu only, in
// log order: a segment object is created only after the previous one was
// closed. Closing costs no fsync; a flush persists the closed segments,
// oldest first, then syncs the active one (see replay for what a crash
// in between leaves).
// Group commit: any number of appends made before a flush share its one
// Sync (or Close) of the store object.
type logWriter struct {
	st      objstore.Store
	vol     string
	uid     uint64
	epoch   uint64
	segSize int

	// mu guards the fields below. Never held during store I/O.
	mu struct {
		sync.Mutex
		segs    []*memSegment // not yet closed in the store, oldest first; last is active
		err     error         // sticky: the first store failure
		durable logPos        // every record before it is durable
		written int64         // bytes appended since open
		kicked  int           // len of the active segment at the last kick
		space   *sync.Cond    // signalled when sealed segments are closed
	}

	// ioMu serializes store I/O. It guards w, wSeq and pushed.
	ioMu   sync.Mutex
	w      objstore.Writer // object of segs[0], nil until created
	wSeq   uint64
	pushed int      // bytes of segment wSeq written to w
	closed []uint64 // segments closed but not yet persisted, oldest first

	kick chan struct{} // wakes the background pusher
	done chan struct{}
	wg   sync.WaitGroup
}

// maxSealed bounds segments waiting for the store before appends block.
const maxSealed = 2

// pushBatch is how many appended bytes wake the pusher; smaller amounts
// reach the store at the next pushInterval tick or flush. Reads are served
// from memory meanwhile, so batching only saves system calls.
const (
	pushBatch    = 1 << 20
	pushInterval = 20 * time.Millisecond
)

// newLogWriter starts appending after end, the last valid byte of segment
// end.seq (seq 0 for an empty log).
func newLogWriter(st objstore.Store, vol string, uid, epoch uint64, segSize int, end logPos) *logWriter {
	l := &logWriter{st: st, vol: vol, uid: uid, epoch: epoch, segSize: segSize,
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	l.mu.space = sync.NewCond(&l.mu.Mutex)
	l.mu.durable = end
	l.mu.segs = []*memSegment{l.newSegment(end)}
	l.wg.Add(1)
	go l.pushLoop()
	return l
}

func (l *logWriter) newSegment(prev logPos) *memSegment {
	s := &memSegment{seq: prev.seq + 1, prev: prev, buf: make([]byte, 0, l.segSize+segment.HeaderSize+segment.MaxPayloadLen)}
	s.buf = segment.AppendSegmentHeader(s.buf, segment.SegmentHeader{
		VolumeUID: l.uid, Seq: s.seq, Epoch: l.epoch,
		PrevSeq: prev.seq, PrevEnd: uint64(prev.off), Created: time.Now().UnixNano(),
	})
	return s
}

// placed is where append put one record.
type placed struct {
	seq    uint64
	recOff int64
}

// append copies encoded records (as produced by segment.Append, lengths in
// lens) into the log and calls apply for each with its place, in log order,
// still under the log lock so the map sees writes in log order.
func (l *logWriter) append(recs []byte, lens []int, apply func(i int, p placed)) (logPos, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if l.mu.err != nil {
			return logPos{}, l.mu.err
		}
		if len(l.mu.segs) <= maxSealed {
			break
		}
		l.kickPusher()
		l.mu.space.Wait()
	}
	for i, n := range lens {
		act := l.mu.segs[len(l.mu.segs)-1]
		if len(act.buf)+n > l.segSize && len(act.buf) > segment.SegmentHeaderLen {
			act.sealed = true
			act = l.newSegment(logPos{act.seq, int64(len(act.buf))})
			l.mu.segs = append(l.mu.segs, act)
			l.mu.kicked = 0
			l.kickPusher()
		}
		off := len(act.buf)
		act.buf = append(act.buf, recs[:n]...)
		recs = recs[n:]
		apply(i, placed{seq: act.seq, recOff: int64(off)})
	}
	l.mu.written += int64(sum(lens))
	if act := l.mu.segs[len(l.mu.segs)-1]; len(act.buf)-l.mu.kicked >= pushBatch {
		l.mu.kicked = len(act.buf)
		l.kickPusher()
	}
	return l.mu.segs[len(l.mu.segs)-1].endPos(), nil
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

func (l *logWriter) kickPusher() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// end returns the position after the last appended record.
func (l *logWriter) end() logPos {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.segs[len(l.mu.segs)-1].endPos()
}

// bytesWritten is the number of log bytes appended since open.
func (l *logWriter) bytesWritten() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.written
}

// segmentBytes returns the in-memory bytes of segment seq, or nil when the
// store has it.
func (l *logWriter) segmentBytes(seq uint64) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.mu.segs {
		if s.seq == seq {
			return s.buf[:len(s.buf):len(s.buf)]
		}
	}
	return nil
}

// pushLoop writes appended bytes to the store in the background, so data
// reaches the store (and the OS) soon even without flushes.
func (l *logWriter) pushLoop() {
	defer l.wg.Done()
	tick := time.NewTicker(pushInterval)
	defer tick.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-l.kick:
		case <-tick.C:
		}
		l.ioMu.Lock()
		_ = l.pushLocked(false)
		l.ioMu.Unlock()
	}
}

// flush makes every record before target durable.
func (l *logWriter) flush(target logPos) error {
	l.mu.Lock()
	durable, err := l.mu.durable, l.mu.err
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if !durable.less(target) {
		return nil
	}
	l.ioMu.Lock()
	defer l.ioMu.Unlock()
	// Group commit: a flush that waited for ioMu is often covered by the
	// sync that ran meanwhile.
	l.mu.Lock()
	durable, err = l.mu.durable, l.mu.err
	l.mu.Unlock()
	if err != nil || !durable.less(target) {
		return err
	}
	return l.pushLocked(true)
}

// pushLocked writes appended bytes to the store, closing sealed segments.
// With sync it also makes everything appended so far durable: closed
// segments are persisted in order, then the active one is synced. ioMu is held.
func (l *logWriter) pushLocked(sync bool) error {
	for {
		l.mu.Lock()
		if err := l.mu.err; err != nil {
			l.mu.Unlock()
			return err
		}
		seg := l.mu.segs[0]
		data, sealed := seg.buf[:len(seg.buf)], seg.sealed
		l.mu.Unlock()
		if !sealed && len(data) == segment.SegmentHeaderLen {
			// No records in the active segment: it need not exist yet.
			if sync {
				if err := l.persistClosedLocked(); err != nil {
					return l.fail(err)
				}
				l.advanceDurable(seg.prev)
			}
			return nil
		}
		if err := l.writeLocked(seg.seq, data); err != nil {
			return l.fail(err)
		}
		if sealed {
			if err := l.closeLocked(seg); err != nil {
				return l.fail(err)
			}
			continue
		}
		if !sync {
			return nil
		}
		if err := l.persistClosedLocked(); err != nil {
			return l.fail(err)
		}
		err := l.w.Sync()
		if errors.Is(err, objstore.ErrSyncUnsupported) {
			// Only Close is durable on this store (HDFS): seal, then close it.
			l.sealActive(seg)
			continue
		}
		if err != nil {
			return l.fail(fmt.Errorf("lfs: sync segment %d of %s: %w", seg.seq, l.vol, err))
		}
		l.advanceDurable(logPos{seg.seq, int64(len(data))})
		return nil
	}
}

// persistClosedLocked makes the segments closed since the last flush durable,
// oldest first. ioMu is held.
func (l *logWriter) persistClosedLocked() error {
	for len(l.closed) > 0 {
		if err := l.st.Persist(segName(l.vol, l.closed[0])); err != nil {
			return fmt.Errorf("lfs: persist segment %d of %s: %w", l.closed[0], l.vol, err)
		}
		l.closed = l.closed[1:]
	}
	return nil
}

// sealActive seals seg if it is still the active segment and starts the next.
func (l *logWriter) sealActive(seg *memSegment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !seg.sealed {
		seg.sealed = true
		l.mu.segs = append(l.mu.segs, l.newSegment(logPos{seg.seq, int64(len(seg.buf))}))
	}
}

func (l *logWriter) advanceDurable(p logPos) {
	l.mu.Lock()
	if l.mu.durable.less(p) {
		l.mu.durable = p
	}
	l.mu.Unlock()
}

// writeLocked creates the object of segment seq when needed and writes the
// bytes of data it does not have yet.
func (l *logWriter) writeLocked(seq uint64, data []byte) error {
	if l.w == nil || l.wSeq != seq {
		w, err := l.st.Create(segName(l.vol, seq))
		if err != nil {
			return fmt.Errorf("lfs: create segment %d of %s: %w", seq, l.vol, err)
		}
		l.w, l.wSeq, l.pushed = w, seq, 0
	}
	if l.pushed < len(data) {
		if _, err := l.w.Write(data[l.pushed:]); err != nil {
			return fmt.Errorf("lfs: write segment %d of %s: %w", seq, l.vol, err)
		}
		l.pushed = len(data)
	}
	return nil
}

// closeLocked closes the sealed oldest segment and drops its memory copy;
// reads of it go to the store from now on. It becomes durable at the next
// flush (persistClosedLocked), or right away on stores where Close is.
func (l *logWriter) closeLocked(seg *memSegment) error {
	if err := l.w.Close(); err != nil {
		return fmt.Errorf("lfs: close segment %d of %s: %w", seg.seq, l.vol, err)
	}
	l.w = nil
	l.closed = append(l.closed, seg.seq)
	l.mu.Lock()
	l.mu.segs = l.mu.segs[1:]
	l.mu.space.Broadcast()
	l.mu.Unlock()
	return nil
}

// fail records the first store error; every later append and flush returns it.
func (l *logWriter) fail(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.err == nil {
		l.mu.err = err
	}
	l.mu.space.Broadcast()
	return l.mu.err
}

// close stops the pusher after making everything durable. The active
// segment is closed in the store so nothing is left open.
func (l *logWriter) close() error {
	err := l.flush(l.end())
	close(l.done)
	l.wg.Wait()
	l.ioMu.Lock()
	defer l.ioMu.Unlock()
	if err == nil && l.w != nil {
		err = l.w.Close() // synced by the flush above
		l.w = nil
	}
	return err
}
