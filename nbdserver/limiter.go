package nbdserver

import "sync"

// limiter bounds the requests one connection serves at once, by count and by
// payload bytes. Only the connection's reading goroutine acquires; workers
// release. A request larger than maxBytes is admitted once nothing else is in
// flight, so it cannot starve.
type limiter struct {
	maxReqs  int
	maxBytes int64
	cond     sync.Cond // signalled on release; uses &mu
	// mu guards the amounts in flight; no I/O happens under it.
	mu struct {
		sync.Mutex
		reqs  int
		bytes int64
	}
}

// init sets the bounds; the zero limiter must be initialised before use.
func (l *limiter) init(maxReqs int, maxBytes int64) {
	l.maxReqs = maxReqs
	l.maxBytes = maxBytes
	l.cond.L = &l.mu
}

// acquire blocks until one more request of n bytes fits, then counts it.
func (l *limiter) acquire(n int64) {
	l.mu.Lock()
	for l.mu.reqs >= l.maxReqs || (l.mu.reqs > 0 && l.mu.bytes+n > l.maxBytes) {
		l.cond.Wait()
	}
	l.mu.reqs++
	l.mu.bytes += n
	l.mu.Unlock()
}

// release returns what an earlier acquire(n) took.
func (l *limiter) release(n int64) {
	l.mu.Lock()
	l.mu.reqs--
	l.mu.bytes -= n
	l.mu.Unlock()
	l.cond.Signal()
}
