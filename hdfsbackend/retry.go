package hdfsbackend

import "time"

// backoff yields the pauses of a bounded retry loop: first, doubling up to
// max, until the pauses add up to limit.
type backoff struct {
	next, max, left time.Duration
}

func newBackoff(first, max, limit time.Duration) *backoff {
	return &backoff{next: first, max: max, left: limit}
}

// pause returns the next pause and true, or false when the budget is spent.
func (b *backoff) pause() (time.Duration, bool) {
	if b.left <= 0 {
		return 0, false
	}
	d := min(b.next, b.left)
	b.left -= d
	b.next = min(2*b.next, b.max)
	return d, true
}

// retryWhile calls f until it returns an error for which again is false
// (or nil), pausing with sleep between calls as b allows. When the budget
// runs out it returns f's last error.
func retryWhile(f func() error, again func(error) bool, b *backoff, sleep func(time.Duration)) error {
	for {
		err := f()
		if err == nil || !again(err) {
			return err
		}
		d, ok := b.pause()
		if !ok {
			return err
		}
		sleep(d)
	}
}
