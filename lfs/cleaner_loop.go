package lfs

import (
	"time"
)

// CleanerOptions tune the background cleaner of a served volume.
type CleanerOptions struct {
	// Interval between checks; 0 means 1 s.
	Interval time.Duration
	// Trigger is the share of garbage in the segments the cleaner may
	// touch above which a pass starts; 0 means 0.25.
	Trigger float64
	// Rate bounds the bytes copied per second while garbage is below 1.2
	// times the trigger, so foreground I/O keeps its latency; above that the
	// cleaner copies as fast as it can, or space would grow without bound
	// under a sustained write load. 0 means 32 MiB/s, negative means no
	// bound.
	Rate int64
	// MaxCopy bounds the live bytes one pass copies; 0 means 32 MiB. Every
	// pass ends with two checkpoints (whole maps), and a segment is deleted
	// after them: smaller passes free space sooner, larger ones write fewer
	// maps.
	MaxCopy int64
	// MaxUtilization: segments with a larger share of live bytes are left
	// alone; 0 means 0.8.
	MaxUtilization float64
	// MinGarbage is the least garbage worth a pass; 0 means two segments.
	MinGarbage int64
}

func (o CleanerOptions) withDefaults() CleanerOptions {
	if o.Interval == 0 {
		o.Interval = time.Second
	}
	if o.Trigger == 0 {
		o.Trigger = 0.25
	}
	if o.Rate == 0 {
		o.Rate = 32 << 20
	}
	if o.Rate < 0 {
		o.Rate = 0
	}
	if o.MaxUtilization == 0 {
		o.MaxUtilization = 0.8
	}
	if o.MaxCopy == 0 {
		o.MaxCopy = 32 << 20
	}
	return o
}

// StartCleaner runs the cleaner in the background until Close. Call it
// once, on a volume opened for writing.
func (v *Volume) StartCleaner(o CleanerOptions) {
	if v.lw == nil {
		return
	}
	o = o.withDefaults()
	if o.MinGarbage == 0 {
		o.MinGarbage = 2 * int64(v.sb.segmentSize)
	}
	// A step every interval, and one at once when the log writer found
	// the segment pool empty: deletions refill it. (Spacing woken steps
	// 50 or 250 ms apart, against the checkpoints a step with deletions
	// pending writes, cost 1M sequential writes 5-10%: docs/design.md §3.)
	v.every(o.Interval, v.lw.poolMiss, func() {
		if err := v.cleanStep(o); err != nil {
			v.log.Error("cleaning failed; retrying later", "err", err)
		}
	})
}

// cleanStep deletes what two checkpoints have passed, and runs passes while
// garbage is above the trigger.
func (v *Volume) cleanStep(o CleanerOptions) error {
	v.gcMu.Lock()
	defer v.gcMu.Unlock()
	v.trimIdlePool()
	for !isClosed(v.stopBackground) {
		if _, err := v.deleteReady(); err != nil {
			return err
		}
		if len(v.gc.pending) > 0 {
			// Segments wait for checkpoints that an idle volume would not
			// write: write them now.
			if err := v.forceCheckpoints(); err != nil {
				return err
			}
			if _, err := v.deleteReady(); err != nil {
				return err
			}
		}
		g, err := v.garbageBooks()
		if err != nil {
			return err
		}
		v.maybeCheckpointForCleaner()
		enough := func(garbage int64, share float64) bool {
			return share >= o.Trigger && garbage >= o.MinGarbage
		}
		if !enough(g.cleanable, g.cleanableShare) {
			if enough(g.closed, g.closedShare) && g.limit < g.active {
				// The garbage lies after the oldest checkpoint, and no
				// checkpoint is coming soon (an idle or lightly written
				// volume): write them, so the cleaner may take it.
				if err := v.forceCheckpoints(); err != nil {
					return err
				}
				continue
			}
			return nil
		}
		// Copy at least as fast as clients write, or garbage grows
		// without bound; with no bound once well behind.
		rate := o.Rate
		if w := v.clientWriteRate(); rate > 0 && w > rate {
			rate = w
		}
		if g.cleanableShare > 1.2*o.Trigger {
			rate = 0
		}
		st, err := v.cleanPass(GCOptions{Rate: rate, MaxCopy: o.MaxCopy, MaxUtilization: o.MaxUtilization}, v.stopBackground)
		if err != nil || st.Passes == 0 {
			return err
		}
		// The pass ended with a checkpoint; one more and its victims go
		// now rather than a pass later (space comes back sooner, for one
		// more map write).
		v.ckpt.Lock()
		err = v.checkpointLockedCkpt(true)
		v.ckpt.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// garbageEstimate is what the books say about garbage: in the segments
// before the oldest checkpoint kept (which the cleaner may take), and in
// every segment before the one being written.
type garbageEstimate struct {
	cleanable, closed           int64
	cleanableShare, closedShare float64
	limit, active               uint64 // cleanLimit, and the oldest segment still in memory
}

// garbageBooks estimates garbage from the books and the segment sizes.
func (v *Volume) garbageBooks() (garbageEstimate, error) {
	var g garbageEstimate
	var err error
	if g.limit, err = v.cleanLimit(); err != nil {
		return g, err
	}
	g.active = v.lw.firstInMemory()
	seqs, err := listSegments(v.st, v.name)
	if err != nil {
		return g, err
	}
	v.mu.RLock()
	live := v.mu.books.copyCounts()
	v.mu.RUnlock()
	var cleanableSize, closedSize int64
	for _, seq := range seqs {
		if seq >= g.active {
			break
		}
		if _, ok := v.gc.pending[seq]; ok {
			continue
		}
		n, err := v.segmentObjectSize(seq, g.limit)
		if err != nil {
			return g, err
		}
		garbage := max(0, n-live[seq])
		closedSize += n
		g.closed += garbage
		if seq < g.limit {
			cleanableSize += n
			g.cleanable += garbage
		}
	}
	if cleanableSize > 0 {
		g.cleanableShare = float64(g.cleanable) / float64(cleanableSize)
	}
	if closedSize > 0 {
		g.closedShare = float64(g.closed) / float64(closedSize)
	}
	v.metrics.setSpace(closedSize, g.closed)
	return g, nil
}

// maybeCheckpointForCleaner asks for a checkpoint when much of the log
// written since the oldest kept checkpoint could be cleaned once a
// checkpoint lets it: checkpoints otherwise come only every
// CheckpointInterval bytes.
func (v *Volume) maybeCheckpointForCleaner() {
	since := v.lw.bytesWritten() - v.ckpt.at.Load()
	v.mu.RLock()
	live := v.mu.books.total()
	v.mu.RUnlock()
	if since > max(4*int64(v.sb.segmentSize), live/4) {
		select {
		case v.ckptKick <- struct{}{}:
		default:
		}
	}
}

// clientWriteRate is the bytes per second clients appended to the log since
// the last call (the cleaner's own copies excluded).
func (v *Volume) clientWriteRate() int64 {
	now, written := time.Now(), v.lw.bytesWritten()
	client := written - v.gc.copiedBytes
	var rate int64
	if el := now.Sub(v.gc.rateAt); !v.gc.rateAt.IsZero() && el > 0 {
		rate = int64(float64(client-v.gc.rateClient) / el.Seconds())
	}
	v.gc.rateAt, v.gc.rateClient = now, client
	return rate
}
