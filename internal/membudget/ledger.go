package membudget

import (
	"sort"
	"time"
)

// kind is what an acquisition holds memory for.
type kind int

const (
	kindLog     kind = iota // reclaimable log data
	kindRequest             // request payloads, released when answered
	numKinds
)

// ledger is the accounting core: how much each kind holds against the
// limit, and whether one more acquisition may be granted. It does no
// locking and never blocks.
//
// Invariant: held[k] >= 0 for every kind, and held[kindRequest] <=
// max(limit/2, the largest single request granted while none was held).
type ledger struct {
	limit int64
	held  [numKinds]int64
	peak  int64 // highest used() seen
}

func (l *ledger) used() int64 { return l.held[kindLog] + l.held[kindRequest] }

// requestCap is the most request memory may hold, so that log memory,
// which reclaim can always free, keeps at least half the limit.
func (l *ledger) requestCap() int64 { return l.limit / 2 }

// fits reports whether n more bytes of kind k may be granted now.
//
// Log: when everything fits under the limit, or when no log memory is held
// at all (an oversized append must not wait forever; nothing of its kind is
// left to reclaim). Request: within the request cap (or alone), and within
// the limit (or when no log memory is left to reclaim).
func (l *ledger) fits(k kind, n int64) bool {
	total := l.used()+n <= l.limit || l.held[kindLog] == 0
	if k == kindRequest {
		r := l.held[kindRequest]
		return total && (r == 0 || r+n <= l.requestCap())
	}
	return total
}

func (l *ledger) take(k kind, n int64) {
	l.held[k] += n
	l.peak = max(l.peak, l.used())
}

func (l *ledger) give(k kind, n int64) {
	l.held[k] -= n
	if l.held[k] < 0 {
		panic("membudget: released more than acquired")
	}
}

// shortfall is how many bytes of log memory must be released for n bytes of
// kind k to fit under the limit; 0 when they fit or when reclaiming cannot
// help (the request cap is what holds them back).
func (l *ledger) shortfall(k kind, n int64) int64 {
	if k == kindRequest && l.held[kindRequest] > 0 && l.held[kindRequest]+n > l.requestCap() {
		return 0
	}
	return max(0, l.used()+n-l.limit)
}

// candidate is a reclaimer's answer to Reclaimable.
type candidate struct {
	bytes int64
	since time.Time
}

// chooseVictims returns the indexes of the candidates to reclaim so that at
// least need bytes are released: the largest first, the oldest among equals,
// as few as possible. Candidates holding nothing are never chosen. When all
// of them together hold less than need, all of those holding something are
// chosen.
func chooseVictims(cands []candidate, need int64) []int {
	if need <= 0 {
		return nil
	}
	idx := make([]int, 0, len(cands))
	for i, c := range cands {
		if c.bytes > 0 {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ca, cb := cands[idx[a]], cands[idx[b]]
		if ca.bytes != cb.bytes {
			return ca.bytes > cb.bytes
		}
		return ca.since.Before(cb.since)
	})
	var got int64
	for i, j := range idx {
		if got >= need {
			return idx[:i]
		}
		got += cands[j].bytes
	}
	return idx
}
