package lfs

import (
	"sync"
	"sync/atomic"
)

// volumeMetrics are a volume's figures for monitoring: cheap to read, with
// no store I/O, so a scrape never waits on the store.
type volumeMetrics struct {
	// cleanerCopied counts the bytes the cleaner copied forward since open.
	cleanerCopied atomic.Int64
	// space is the cleaner's last look at the segments in the store.
	space struct {
		sync.Mutex
		known           bool
		stored, garbage int64
	}
}

func (m *volumeMetrics) setSpace(stored, garbage int64) {
	m.space.Lock()
	m.space.known, m.space.stored, m.space.garbage = true, stored, garbage
	m.space.Unlock()
}

// CleanerCopiedBytes is the number of bytes the cleaner (in the background
// or through GC) copied forward since the volume was opened.
func (v *Volume) CleanerCopiedBytes() int64 { return v.metrics.cleanerCopied.Load() }

// SpaceEstimate returns the bytes of the volume's closed log segments in
// the store and how many of them nothing names (garbage the cleaner may
// reclaim), as the background cleaner last counted them from the books and
// the segment sizes, once every CleanerOptions.Interval. It does no I/O.
// The segment being written is not counted, nor are checkpoints and
// snapshot maps (see Usage for a full count). ok is false until the
// cleaner has looked once: always without StartCleaner.
func (v *Volume) SpaceEstimate() (stored, garbage int64, ok bool) {
	m := &v.metrics
	m.space.Lock()
	defer m.space.Unlock()
	return m.space.stored, m.space.garbage, m.space.known
}
