package lfs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hlfs/hlfs/internal/membudget"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
)

// memSegment is a segment whose bytes are held in memory until the store has
// it complete (closed): reads of it are served from buf, and a failed store
// object can be written again from it. Bytes below buf.len() never change
// once appended.
type memSegment struct {
	seq    uint64
	buf    segBuf
	sealed bool        // no more appends; buf.len() is final
	prev   segment.Pos // end of the previous segment, where the log stood before this one
	// charged is what the segment's records hold of the memory budget,
	// released when the store has the segment; since is when the first
	// of them was appended.
	charged int64
	since   time.Time
}

// endPos is the position after the segment's last record; for a segment
// holding only its header that is the end of the previous one, so positions
// never name a segment that may not exist in the store.
func (s *memSegment) endPos() segment.Pos {
	if s.buf.len() == segment.SegmentHeaderLen {
		return s.prev
	}
	return segment.Pos{Seq: s.seq, Off: int64(s.buf.len())}
}

// logWriter appends records to the volume's log and makes them durable.
//
// Appends are memory copies (or references to kept payloads, segBuf.keep)
// under mu; store I/O happens under ioMu only, in
// log order: a segment object is created only after the previous one was
// closed. Closing costs no fsync; a flush persists the closed segments,
// oldest first, then syncs the active one (see replay for what a crash
// in between leaves). Group commit: a flush covers every append before it,
// and flushes queued behind a sync are usually covered by it.
//
// Store failures: the object being written is abandoned and the segment is
// written again, from memory, to a new attempt object (no pipeline recovery
// on HDFS); the failed call returns the error, appends go on in memory up to
// maxSealed segments, and the pusher retries with backoff, so serving
// resumes when the store does. Only ErrExist on create is final: another
// writer holds the volume (fencing).
//
// Memory budget: with a membudget.Budget, an append first acquires its
// bytes (with no lock held), and a segment releases what its records
// acquired once the store has it (closed). The writer is a
// membudget.Reclaimer: asked for memory, it seals its active segment early
// (a shorter segment, as a flush on HDFS makes) and wakes the pusher,
// which writes and closes it. Neither step waits for the budget, and an
// append never waits for it while holding mu or ioMu, so a writer waiting
// for memory cannot block the reclaim that makes room.
type logWriter struct {
	st      objstore.Store
	vol     string
	uid     uint64
	epoch   uint64
	segSize int
	// attempts records the attempt number of segments written again after a
	// failure (absent: attempt 0); shared with the volume's segment readers.
	attempts *attemptMap

	// started counts the segment objects created (the segment pool's
	// demand: Volume.poolBoundNow); poolMiss is signalled when one could
	// not be created over a pooled object (the cleaner runs a step).
	started  atomic.Int64
	poolMiss chan struct{}

	// mu guards the fields below. Never held during store I/O.
	mu struct {
		sync.Mutex
		segs    []*memSegment // not yet closed in the store, oldest first; last is active
		fatal   error         // sticky: the volume was taken over (fencing)
		lastErr error         // the last store failure, cleared by a success
		durable segment.Pos   // every record before it is durable
		written int64         // bytes appended since open
		kicked  int           // len of the active segment at the last kick
		space   *sync.Cond    // signalled when sealed segments are closed
	}

	// ioMu serializes store I/O. It guards the fields below.
	ioMu    sync.Mutex
	w       objstore.Writer // object of segs[0], nil until created
	wSeq    uint64
	pushed  int      // bytes of segment wSeq written to w
	wSynced bool     // a Sync of w succeeded: it holds flushed data
	closed  []uint64 // segments closed but not yet persisted, oldest first
	// abandoned holds failed attempt objects per segment; they are removed
	// once a later attempt of the segment is durable (until then, after a
	// crash, recovery picks whichever attempt holds the most valid records).
	abandoned map[uint64][]string
	retryAt   time.Time
	backoff   time.Duration

	// recycle: create segment objects over the volume's pooled ones
	// (segment_pool.go).
	recycle bool

	// retryFor bounds how long a flush retries a failing store (abandoning
	// and rewriting the object each time) before it reports the failure.
	retryFor time.Duration

	budget     *membudget.Budget // nil: no budget
	unregister func()            // removes the writer from budget's reclaimers
	ctx        context.Context   // ends waits for memory: cancelled by stopWaiting and when the pusher stops
	cancelCtx  context.CancelFunc

	kick chan struct{} // wakes the background pusher
	done chan struct{}
	wg   sync.WaitGroup
}

// appendWait bounds how long an append waits for the store to take sealed
// segments, or for memory, before it fails. A variable for tests.
var appendWait = 30 * time.Second

const (
	// maxSealed bounds segments waiting for the store before appends block.
	maxSealed = 2
	// pushBatch is how many appended bytes wake the pusher; smaller amounts
	// reach the store at the next pushInterval tick or flush. Reads are
	// served from memory meanwhile, so batching only saves system calls.
	pushBatch    = 1 << 20
	pushInterval = 20 * time.Millisecond
	maxBackoff   = 5 * time.Second
)

// newLogWriter starts appending after end, the last valid byte of segment
// end.seq (seq 0 for an empty log).
// With a budget, appended bytes count against it until the store has them.
func newLogWriter(st objstore.Store, vol string, uid, epoch uint64, segSize int, end segment.Pos, attempts *attemptMap, retryFor time.Duration, budget *membudget.Budget, recycle bool) *logWriter {
	l := &logWriter{st: st, vol: vol, uid: uid, epoch: epoch, segSize: segSize, attempts: attempts, retryFor: retryFor, recycle: recycle,
		budget: budget, abandoned: make(map[uint64][]string), kick: make(chan struct{}, 1), poolMiss: make(chan struct{}, 1), done: make(chan struct{})}
	l.mu.space = sync.NewCond(&l.mu.Mutex)
	l.mu.durable = end
	l.mu.segs = []*memSegment{l.newSegmentLockedMu(end)}
	l.unregister = budget.Register(l)
	l.ctx, l.cancelCtx = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.pushLoop()
	return l
}

// logCut describes the log between two appends.
type logCut struct {
	end         segment.Pos // end of the last record appended
	activeEmpty bool        // the active segment holds no record yet
	written     int64       // bytes appended since open
}

// atCut runs fn under the writer's lock, between two appends. Appends
// change the maps in their apply callback under the same lock, so fn sees
// the maps exactly as the log up to c.end leaves them: a consistent cut
// for checkpoints, recounts and checks. fn must not append, flush or do
// store I/O; it may take Volume.mu (lock order: lw.mu before mu).
func (l *logWriter) atCut(fn func(c logCut)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	act := l.mu.segs[len(l.mu.segs)-1]
	fn(logCut{end: act.endPos(), activeEmpty: act.buf.len() == segment.SegmentHeaderLen, written: l.mu.written})
}

// newSegmentLockedMu starts the segment after prev. mu is held (or l is not
// shared yet).
func (l *logWriter) newSegmentLockedMu(prev segment.Pos) *memSegment {
	s := &memSegment{seq: prev.Seq + 1, prev: prev}
	var hdr [segment.SegmentHeaderLen]byte
	rec := segment.AppendSegmentHeader(hdr[:0], segment.SegmentHeader{
		VolumeUID: l.uid, Seq: s.seq, Epoch: l.epoch,
		PrevSeq: prev.Seq, PrevEnd: uint64(prev.Off), Created: time.Now().UnixNano(),
	})
	segment.Seal(rec, s.seq)
	s.buf.append(rec)
	return s
}

// placed is where append put one record.
type placed struct {
	seq    uint64
	recOff int64
}

// append copies encoded records (as produced by segment.Append, whole
// lengths in lens) into the log and calls apply for each with its place,
// in log order, still under the log lock so the map sees writes in log
// order. A record with a payload in refs (refs[i] not nil; refs may be
// nil) has only its header and block checksums in recs
// (segment.AppendSplit), and its payload is copied from refs[i]. Each
// record is sealed for the segment it lands in (segment.Seal) in recs,
// before it is copied: recs is the caller's buffer, changed in place, and
// must not be shared with another append meanwhile. With keep, payloads in
// refs that keptByReference accepts are kept by reference, not copied:
// they belong to keep (segBuf.keep).
//
// With a budget it first waits, holding no lock, until the bytes fit.
func (l *logWriter) append(recs []byte, lens []int, refs [][]byte, keep *keptPayload, apply func(i int, p placed)) (segment.Pos, error) {
	total := int64(sum(lens))
	if err := l.acquire(total); err != nil {
		return segment.Pos{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.waitSpaceLockedMu(); err != nil {
		l.budget.Release(total)
		return segment.Pos{}, err
	}
	now := time.Now()
	for i, n := range lens {
		act := l.mu.segs[len(l.mu.segs)-1]
		if act.buf.len()+n > l.segSize && act.buf.len() > segment.SegmentHeaderLen {
			act.sealed = true
			act = l.newSegmentLockedMu(segment.Pos{Seq: act.seq, Off: int64(act.buf.len())})
			l.mu.segs = append(l.mu.segs, act)
			l.mu.kicked = 0
			l.kickPusher()
		}
		off := act.buf.len()
		if refs == nil || refs[i] == nil {
			segment.Seal(recs[:n], act.seq)
			act.buf.append(recs[:n])
			recs = recs[n:]
		} else {
			hdr, sums := recs[:segment.HeaderSize], recs[segment.HeaderSize:n-len(refs[i])]
			segment.SealSplit(hdr, sums, act.seq)
			act.buf.append(hdr)
			if keep != nil && keptByReference(refs[i]) {
				act.buf.keep(refs[i], keep)
			} else {
				act.buf.append(refs[i])
			}
			act.buf.append(sums)
			recs = recs[len(hdr)+len(sums):]
		}
		if act.charged == 0 {
			act.since = now
		}
		act.charged += int64(n)
		apply(i, placed{seq: act.seq, recOff: int64(off)})
	}
	l.mu.written += total
	if act := l.mu.segs[len(l.mu.segs)-1]; act.buf.len()-l.mu.kicked >= pushBatch {
		l.mu.kicked = act.buf.len()
		l.kickPusher()
	}
	return l.mu.segs[len(l.mu.segs)-1].endPos(), nil
}

// acquire takes n bytes of the memory budget for an append, waiting up to
// appendWait for reclaims (this writer's own included) to make room. No
// lock of l is held: the reclaim and the pusher that releases memory take
// them.
func (l *logWriter) acquire(n int64) error {
	if l.budget == nil || l.budget.TryAcquire(n) {
		return nil
	}
	// The volume closing (stopWaiting) ends the wait too.
	ctx, cancel := context.WithTimeout(l.ctx, appendWait)
	defer cancel()
	if err := l.budget.Acquire(ctx, n); err != nil {
		return fmt.Errorf("%w: no memory for %d bytes of %s within %v: %v", ErrStoreUnavailable, n, l.vol, appendWait, err)
	}
	return nil
}

// stopWaiting makes appends waiting for memory, and later ones that would
// have to, fail at once: the volume is closing, and its background work
// (the cleaner) must not hold Close up for appendWait when the store is
// failing and memory does not come back.
func (l *logWriter) stopWaiting() { l.cancelCtx() }

// Reclaimable implements membudget.Reclaimer: the budget held by the active
// segment's records, which sealing it would release once it is written.
func (l *logWriter) Reclaimable() (int64, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	act := l.mu.segs[len(l.mu.segs)-1]
	if l.mu.fatal != nil || act.sealed {
		return 0, time.Time{}
	}
	return act.charged, act.since
}

// Reclaim implements membudget.Reclaimer: it seals the active segment early
// and wakes the pusher, which writes and closes it, releasing its memory.
func (l *logWriter) Reclaim() {
	l.mu.Lock()
	act := l.mu.segs[len(l.mu.segs)-1]
	if act.charged > 0 && l.mu.fatal == nil {
		l.sealActiveLockedMu(act)
		l.mu.kicked = 0
	}
	l.mu.Unlock()
	l.kickPusher()
}

// releaseMemory gives the budget back what the segments still in memory
// hold and leaves the budget's reclaimers: the writer is closed or
// abandoned and those bytes are no longer needed. Idempotent.
func (l *logWriter) releaseMemory() {
	l.mu.Lock()
	var n int64
	for _, s := range l.mu.segs {
		n += s.charged
		s.charged = 0
	}
	l.mu.Unlock()
	l.unregister()
	l.budget.Release(n)
}

// waitSpaceLockedMu waits while too many sealed segments wait for the store,
// up to appendWait. mu is held.
func (l *logWriter) waitSpaceLockedMu() error {
	var timedOut bool
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if l.mu.fatal != nil {
			return l.mu.fatal
		}
		if len(l.mu.segs) <= maxSealed {
			return nil
		}
		if timedOut {
			return fmt.Errorf("%w: %d segments of %s wait for the store: %v", ErrStoreUnavailable, len(l.mu.segs)-1, l.vol, l.mu.lastErr)
		}
		if timer == nil {
			timer = time.AfterFunc(appendWait, func() {
				l.mu.Lock()
				timedOut = true
				l.mu.space.Broadcast()
				l.mu.Unlock()
			})
		}
		l.kickPusher()
		l.mu.space.Wait()
	}
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
func (l *logWriter) end() segment.Pos {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.segs[len(l.mu.segs)-1].endPos()
}

// firstInMemory is the oldest segment whose object the store does not
// have complete yet (sealed or active, held in memory): it and later ones
// may have no object, or one still growing.
func (l *logWriter) firstInMemory() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.segs[0].seq
}

// bytesWritten is the number of log bytes appended since open.
func (l *logWriter) bytesWritten() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.written
}

// readMem copies bytes of segment seq at off into p while the segment is
// held in memory; ok is false when the store has it. The copy happens under
// mu because closed segments' buffers are reused.
func (l *logWriter) readMem(seq uint64, p []byte, off int64) (ok bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.mu.segs {
		if s.seq != seq {
			continue
		}
		if off < 0 || off+int64(len(p)) > int64(s.buf.len()) {
			return true, corruptf(segName(l.vol, seq), off, "read past the in-memory segment end %d", s.buf.len())
		}
		s.buf.readAt(p, int(off))
		return true, nil
	}
	return false, nil
}

// segmentBytes returns a copy of the in-memory bytes of segment seq, or nil
// when the store has it. For tests.
func (l *logWriter) segmentBytes(seq uint64) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.mu.segs {
		if s.seq == seq {
			return s.buf.bytes()
		}
	}
	return nil
}

// pushLoop writes appended bytes to the store in the background, so data
// reaches the store (and the OS) soon even without flushes, and retries
// after store failures with backoff.
func (l *logWriter) pushLoop() {
	defer l.wg.Done()
	defer l.cancelCtx() // appends waiting for memory give up
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
		if time.Now().After(l.retryAt) {
			_ = l.pushLockedIO(false)
		}
		l.ioMu.Unlock()
	}
}

// flush makes every record before target durable.
func (l *logWriter) flush(target segment.Pos) error {
	if done, err := l.durableAt(target); done || err != nil {
		return err
	}
	l.ioMu.Lock()
	defer l.ioMu.Unlock()
	// Group commit: a flush that waited for ioMu is often covered by the
	// sync that ran meanwhile.
	if done, err := l.durableAt(target); done || err != nil {
		return err
	}
	// A failed object is abandoned and rewritten from memory; on HDFS a new
	// object usually gets a pipeline without the failed DataNode, and a
	// restarting NameNode is back within seconds: retry transient failures
	// for a while, so I/O stalls rather than fails.
	deadline := time.Now().Add(l.retryFor)
	pause := 50 * time.Millisecond
	for {
		err := l.pushLockedIO(true)
		if err == nil || !errors.Is(err, objstore.ErrTransient) || !time.Now().Add(pause).Before(deadline) {
			return err
		}
		select {
		case <-l.done:
			return err
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

// durableAt reports whether target is durable, or the fatal error.
func (l *logWriter) durableAt(target segment.Pos) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.fatal != nil {
		return false, l.mu.fatal
	}
	return !l.mu.durable.Less(target), nil
}

// pushLockedIO writes appended bytes to the store, closing sealed segments.
// With sync it also makes everything appended so far durable: closed
// segments are persisted in order, then the active one is synced. ioMu is held.
func (l *logWriter) pushLockedIO(sync bool) error {
	for {
		l.mu.Lock()
		if err := l.mu.fatal; err != nil {
			l.mu.Unlock()
			return err
		}
		seg := l.mu.segs[0]
		data, sealed := seg.buf, seg.sealed // a snapshot: see segBuf
		l.mu.Unlock()
		if !sealed && data.len() == segment.SegmentHeaderLen {
			// No records in the active segment: it need not exist yet.
			if sync {
				if err := l.persistClosedLockedIO(); err != nil {
					return l.failLockedIO(err)
				}
				l.advanceDurable(seg.prev)
			}
			l.succeeded()
			return nil
		}
		if err := l.writeLockedIO(seg.seq, data); err != nil {
			return l.failLockedIO(err)
		}
		if sealed {
			if err := l.closeLockedIO(seg); err != nil {
				return l.failLockedIO(err)
			}
			continue
		}
		if !sync {
			l.succeeded()
			return nil
		}
		if err := l.persistClosedLockedIO(); err != nil {
			return l.failLockedIO(err)
		}
		err := l.w.Sync()
		if errors.Is(err, objstore.ErrSyncUnsupported) {
			// Only Close is durable on this store (HDFS): seal, then close it.
			l.sealActive(seg)
			continue
		}
		if err != nil {
			return l.failLockedIO(fmt.Errorf("lfs: sync segment %d of %s: %w", seg.seq, l.vol, err))
		}
		l.wSynced = true
		l.advanceDurable(segment.Pos{Seq: seg.seq, Off: int64(data.len())})
		l.succeeded()
		return nil
	}
}

// persistClosedLockedIO makes the segments closed since the last flush durable,
// oldest first. ioMu is held.
func (l *logWriter) persistClosedLockedIO() error {
	for len(l.closed) > 0 {
		seq := l.closed[0]
		name := l.attempts.name(l.vol, seq)
		if err := l.st.Persist(name); err != nil {
			return fmt.Errorf("lfs: persist segment %s: %w", name, err)
		}
		for _, old := range l.abandoned[seq] {
			_ = l.st.Remove(old)
		}
		delete(l.abandoned, seq)
		l.closed = l.closed[1:]
	}
	return nil
}

// sealActive seals seg if it is still the active segment and starts the next.
func (l *logWriter) sealActive(seg *memSegment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sealActiveLockedMu(seg)
}

func (l *logWriter) sealActiveLockedMu(seg *memSegment) {
	if !seg.sealed {
		seg.sealed = true
		l.mu.segs = append(l.mu.segs, l.newSegmentLockedMu(segment.Pos{Seq: seg.seq, Off: int64(seg.buf.len())}))
	}
}

func (l *logWriter) advanceDurable(p segment.Pos) {
	l.mu.Lock()
	if l.mu.durable.Less(p) {
		l.mu.durable = p
	}
	l.mu.Unlock()
}

// writeLockedIO creates the object of segment seq when needed and writes the
// bytes of data it does not have yet. A failed write abandons the object
// (failLockedIO), so pushed need not count a partial one.
func (l *logWriter) writeLockedIO(seq uint64, data segBuf) error {
	if l.w == nil || l.wSeq != seq {
		name := l.attempts.name(l.vol, seq)
		w, recycled, err := createSegmentObject(l.st, l.vol, name, l.recycle)
		if err != nil {
			return fmt.Errorf("lfs: create segment %s: %w", name, err)
		}
		if l.recycle && !recycled {
			select {
			case l.poolMiss <- struct{}{}:
			default:
			}
		}
		l.w, l.wSeq, l.pushed, l.wSynced = w, seq, 0, false
		l.started.Add(1)
	}
	if l.pushed < data.len() {
		if err := data.writeTo(l.w, l.pushed); err != nil {
			return fmt.Errorf("lfs: write segment %s: %w", l.attempts.name(l.vol, seq), err)
		}
		l.pushed = data.len()
	}
	return nil
}

// closeLockedIO closes the sealed oldest segment and drops its memory copy,
// releasing its memory budget; reads of it go to the store from now on. It
// becomes durable at the next flush (persistClosedLocked), or right away on
// stores where Close is.
func (l *logWriter) closeLockedIO(seg *memSegment) error {
	if err := l.w.Close(); err != nil {
		return fmt.Errorf("lfs: close segment %s: %w", l.attempts.name(l.vol, seg.seq), err)
	}
	l.w = nil
	l.closed = append(l.closed, seg.seq)
	l.mu.Lock()
	l.mu.segs = l.mu.segs[1:]
	// Nobody holds the chunks: readers copy under mu and the pusher is done
	// with them (ioMu is held).
	seg.buf.free()
	charged := seg.charged
	seg.charged = 0
	l.mu.space.Broadcast()
	l.mu.Unlock()
	l.budget.Release(charged)
	return nil
}

// failLockedIO handles a store failure: the object being written is
// abandoned (its segment will be written again from memory to a new attempt
// object) and the pusher backs off. ErrExist on create means another writer
// took the volume over: that is final. ioMu is held.
func (l *logWriter) failLockedIO(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if errors.Is(err, objstore.ErrExist) {
		if l.mu.fatal == nil {
			l.mu.fatal = fmt.Errorf("%w: %v", ErrFenced, err)
		}
		l.mu.space.Broadcast()
		return l.mu.fatal
	}
	if l.w != nil {
		_ = l.w.Close() // best effort; the object is abandoned either way
		name := l.attempts.name(l.vol, l.wSeq)
		if l.wSynced {
			// It may hold flushed data until a later attempt is durable.
			l.abandoned[l.wSeq] = append(l.abandoned[l.wSeq], name)
		} else {
			// Nothing in it was ever made durable: nothing to keep (a full
			// disk would otherwise leave an object per retry).
			_ = l.st.Remove(name)
		}
		l.attempts.next(l.wSeq)
		l.w = nil
	}
	l.mu.lastErr = err
	l.backoff = min(max(2*l.backoff, 100*time.Millisecond), maxBackoff)
	l.retryAt = time.Now().Add(l.backoff)
	return err
}

// fence stops the writer for good: another owner holds the volume.
func (l *logWriter) fence(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.fatal == nil {
		l.mu.fatal = err
	}
	l.mu.space.Broadcast()
}

// succeeded clears the backoff after a store operation worked. ioMu is held.
func (l *logWriter) succeeded() {
	l.backoff = 0
	l.mu.Lock()
	l.mu.lastErr = nil
	l.mu.Unlock()
}

// close stops the pusher after making everything durable. The active
// segment is closed in the store so nothing is left open, and the memory
// budget gets back what the writer held.
func (l *logWriter) close() error {
	err := l.flush(l.end())
	close(l.done)
	l.wg.Wait()
	defer l.releaseMemory()
	l.ioMu.Lock()
	defer l.ioMu.Unlock()
	if err == nil && l.w != nil {
		err = l.w.Close() // synced by the flush above
		l.w = nil
	}
	return err
}

// attemptMap maps segment seqs written again after a failure to their
// attempt number; safe for concurrent use.
type attemptMap struct {
	mu sync.Mutex
	m  map[uint64]int
}

func newAttemptMap() *attemptMap { return &attemptMap{m: make(map[uint64]int)} }

// name returns the object name of the current attempt of segment seq.
func (a *attemptMap) name(vol string, seq uint64) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return segObjName(vol, seq, a.m[seq])
}

func (a *attemptMap) next(seq uint64) {
	a.mu.Lock()
	a.m[seq]++
	a.mu.Unlock()
}

func (a *attemptMap) set(seq uint64, attempt int) {
	a.mu.Lock()
	if attempt == 0 {
		delete(a.m, seq)
	} else {
		a.m[seq] = attempt
	}
	a.mu.Unlock()
}
