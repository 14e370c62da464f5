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
	// pass ends with a checkpoint, and a segment is deleted two
	// checkpoints after it was copied, so smaller passes free space sooner.
	MaxCopy int64
	// MaxUtilization: segments with a larger share of live bytes are left
	// alone; 0 means 0.8.
	MaxUtilization float64
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
	if o.MaxCopy == 0 {
		o.MaxCopy = 32 << 20
	}
	if o.MaxUtilization == 0 {
		o.MaxUtilization = 0.8
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
	v.ckptWG.Add(1)
	go func() {
		defer v.ckptWG.Done()
		tick := time.NewTicker(o.Interval)
		defer tick.Stop()
		for {
			select {
			case <-v.ckptDone:
				return
			case <-tick.C:
			}
			if err := v.cleanStep(o); err != nil {
				v.log.Error("cleaning failed; retrying later", "err", err)
			}
		}
	}()
}

// cleanStep deletes what two checkpoints have passed, and runs passes while
// garbage is above the trigger.
func (v *Volume) cleanStep(o CleanerOptions) error {
	v.gcMu.Lock()
	defer v.gcMu.Unlock()
	if v.gc.sizes == nil {
		v.gc.sizes, v.gc.pending = make(map[uint64]int64), make(map[uint64]pendingDelete)
	}
	for !isClosed(v.ckptDone) {
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
		garbage, share, err := v.cleanableGarbage()
		if err != nil {
			return err
		}
		v.maybeCheckpointForCleaner()
		if share < o.Trigger || garbage < 2*int64(v.sb.segmentSize) {
			return nil
		}
		rate := o.Rate
		if share > 1.2*o.Trigger {
			rate = 0 // falling behind: catch up
		}
		st, err := v.cleanPass(GCOptions{Rate: rate, MaxCopy: o.MaxCopy, MaxUtilization: o.MaxUtilization}, v.ckptDone)
		if err != nil || st.Passes == 0 {
			return err
		}
		// The pass ended with a checkpoint; one more and its victims go
		// now rather than a pass later (space comes back sooner, for one
		// more map write).
		v.ckptMu.Lock()
		err = v.checkpointLocked(true)
		v.ckptMu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// cleanableGarbage estimates, from the books, the garbage in the segments
// before the oldest checkpoint kept, and its share of their bytes.
func (v *Volume) cleanableGarbage() (int64, float64, error) {
	limit, err := v.cleanLimit()
	if err != nil || limit <= 1 {
		return 0, 0, err
	}
	seqs, err := listSegments(v.st, v.name)
	if err != nil {
		return 0, 0, err
	}
	v.mu.RLock()
	live := v.mu.books.copyCounts()
	v.mu.RUnlock()
	var size, garbage int64
	for _, seq := range seqs {
		if seq >= limit {
			break
		}
		if _, ok := v.gc.pending[seq]; ok {
			continue
		}
		n, err := v.segmentSize(seq)
		if err != nil {
			return 0, 0, err
		}
		size += n
		garbage += max(0, n-live[seq])
	}
	if size == 0 {
		return 0, 0, nil
	}
	return garbage, float64(garbage) / float64(size), nil
}

// maybeCheckpointForCleaner asks for a checkpoint when much of the log
// written since the oldest kept checkpoint could be cleaned once a
// checkpoint lets it: checkpoints otherwise come only every
// CheckpointInterval bytes.
func (v *Volume) maybeCheckpointForCleaner() {
	v.ckptMu.Lock()
	since := v.lw.bytesWritten() - v.ckptAt
	v.ckptMu.Unlock()
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
