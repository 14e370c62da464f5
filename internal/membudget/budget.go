package membudget

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrClosed is returned by Acquire and AcquireRequest once Close was called:
// the process is shutting down and nobody will release memory for them.
var ErrClosed = errors.New("membudget: budget closed")

// retryReclaim is how often a waiter asks the reclaimers again: a victim
// may have released less than it promised, or appends may have refilled
// the budget before the waiter's turn.
const retryReclaim = 50 * time.Millisecond

// Reclaimer is memory that can be given back early: a volume's in-memory
// log segment. Both methods may take the reclaimer's own locks but must not
// wait for the budget; the budget calls them without holding its lock.
type Reclaimer interface {
	// Reclaimable returns how many bytes Reclaim would start releasing now,
	// and since when the oldest of them is held. 0 means nothing to give.
	Reclaimable() (bytes int64, since time.Time)
	// Reclaim starts releasing what Reclaimable reported (a volume seals its
	// active segment and wakes its writer) and returns without waiting for
	// it: the bytes come back through Release once the store has them.
	Reclaim()
}

// Budget is a memory limit shared by the whole process. See the package
// documentation.
type Budget struct {
	// mu guards the fields below; no reclaimer is called under it.
	mu struct {
		sync.Mutex
		ledger
		queue      [numKinds][]*waiter // first come, first served per kind
		reclaimers map[*registration]struct{}
		pending    int64 // bytes reclaims were asked for and not yet released
		closed     bool
	}
}

type waiter struct {
	n     int64
	ready chan struct{} // closed once granted (err nil) or failed
	err   error
}

type registration struct{ r Reclaimer }

// New returns a budget of limit bytes (limit > 0).
func New(limit int64) *Budget {
	if limit <= 0 {
		panic(fmt.Sprintf("membudget: limit %d", limit))
	}
	b := &Budget{}
	b.mu.limit = limit
	b.mu.reclaimers = make(map[*registration]struct{})
	return b
}

// Limit returns the budget's limit in bytes (0 for a nil budget).
func (b *Budget) Limit() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.limit
}

// Used returns the bytes held now, of both kinds (0 for a nil budget).
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.used()
}

// Peak returns the most bytes held at once since New (0 for a nil budget).
func (b *Budget) Peak() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.peak
}

// Waiters returns how many acquisitions are waiting now (0 for a nil
// budget).
func (b *Budget) Waiters() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.mu.queue[kindLog]) + len(b.mu.queue[kindRequest])
}

// Acquire waits until n bytes of log memory fit, asking reclaimers for room
// while it waits, and takes them. It returns ctx.Err() or ErrClosed
// (holding nothing) when those end the wait first. The caller releases
// exactly n with Release.
func (b *Budget) Acquire(ctx context.Context, n int64) error {
	return b.acquire(ctx, kindLog, n)
}

// TryAcquire takes n bytes of log memory when they fit now, without
// waiting or reclaiming, and reports whether it did.
func (b *Budget) TryAcquire(n int64) bool {
	if b == nil || n <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.closed || len(b.mu.queue[kindLog]) > 0 || !b.mu.fits(kindLog, n) {
		return false
	}
	b.mu.take(kindLog, n)
	return true
}

// Release gives back n bytes of log memory taken by Acquire.
func (b *Budget) Release(n int64) { b.release(kindLog, n) }

// AcquireRequest waits until n bytes of request memory fit and takes them,
// like Acquire; request memory never exceeds half the limit (but a single
// larger request runs alone). The caller releases exactly n with
// ReleaseRequest.
func (b *Budget) AcquireRequest(ctx context.Context, n int64) error {
	return b.acquire(ctx, kindRequest, n)
}

// ReleaseRequest gives back n bytes taken by AcquireRequest.
func (b *Budget) ReleaseRequest(n int64) { b.release(kindRequest, n) }

// Register adds r to the reclaimers asked for memory; call the returned
// function (once) before r's memory goes away for good.
func (b *Budget) Register(r Reclaimer) (unregister func()) {
	if b == nil {
		return func() {}
	}
	reg := &registration{r}
	b.mu.Lock()
	b.mu.reclaimers[reg] = struct{}{}
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		delete(b.mu.reclaimers, reg)
		b.mu.Unlock()
	}
}

// Close fails every waiting and later acquisition with ErrClosed, so that
// shutdown never hangs on memory. Releases still count.
func (b *Budget) Close() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.closed = true
	for k := range b.mu.queue {
		for _, w := range b.mu.queue[k] {
			w.err = ErrClosed
			close(w.ready)
		}
		b.mu.queue[k] = nil
	}
}

func (b *Budget) acquire(ctx context.Context, k kind, n int64) error {
	if b == nil || n <= 0 {
		return nil
	}
	b.mu.Lock()
	if b.mu.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if len(b.mu.queue[k]) == 0 && b.mu.fits(k, n) {
		b.mu.take(k, n)
		b.mu.Unlock()
		return nil
	}
	w := &waiter{n: n, ready: make(chan struct{})}
	b.mu.queue[k] = append(b.mu.queue[k], w)
	b.mu.Unlock()

	b.reclaim(false)
	tick := time.NewTicker(retryReclaim)
	defer tick.Stop()
	for {
		select {
		case <-w.ready:
			return w.err
		case <-tick.C:
			b.reclaim(true)
		case <-ctx.Done():
			b.mu.Lock()
			select {
			case <-w.ready: // granted or closed meanwhile
				b.mu.Unlock()
				if w.err == nil {
					b.release(k, n)
				}
				return ctx.Err()
			default:
			}
			q := b.mu.queue[k]
			for i, x := range q {
				if x == w {
					b.mu.queue[k] = append(q[:i:i], q[i+1:]...)
					break
				}
			}
			b.grantLocked() // those behind w may fit now
			b.mu.Unlock()
			return ctx.Err()
		}
	}
}

func (b *Budget) release(k kind, n int64) {
	if b == nil || n <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.give(k, n)
	if k == kindLog {
		b.mu.pending = max(0, b.mu.pending-n)
	}
	b.grantLocked()
}

// grantLocked grants waiters at the head of each queue while they fit.
func (b *Budget) grantLocked() {
	for k := range b.mu.queue {
		for len(b.mu.queue[k]) > 0 {
			w := b.mu.queue[k][0]
			if !b.mu.fits(kind(k), w.n) {
				break
			}
			b.mu.take(kind(k), w.n)
			b.mu.queue[k] = b.mu.queue[k][1:]
			close(w.ready)
		}
	}
}

// reclaim asks reclaimers for the log memory the waiters at the queue heads
// lack, beyond what earlier reclaims were asked for and have not released
// yet (retry: forget those, they may have given less than promised).
func (b *Budget) reclaim(retry bool) {
	b.mu.Lock()
	if retry {
		b.mu.pending = 0
	}
	var need int64
	for k := range b.mu.queue {
		if q := b.mu.queue[k]; len(q) > 0 {
			need = max(need, b.mu.shortfall(kind(k), q[0].n))
		}
	}
	need -= b.mu.pending
	if need <= 0 {
		b.mu.Unlock()
		return
	}
	regs := make([]*registration, 0, len(b.mu.reclaimers))
	for r := range b.mu.reclaimers {
		regs = append(regs, r)
	}
	b.mu.pending += need // other waiters do not ask for the same bytes again
	b.mu.Unlock()

	cands := make([]candidate, len(regs))
	for i, r := range regs {
		cands[i].bytes, cands[i].since = r.r.Reclaimable()
	}
	var asked int64
	for _, i := range chooseVictims(cands, need) {
		regs[i].r.Reclaim()
		asked += cands[i].bytes
	}
	b.mu.Lock()
	b.mu.pending += asked - need
	b.mu.pending = max(0, b.mu.pending)
	b.mu.Unlock()
}
