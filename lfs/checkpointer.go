package lfs

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"time"
)

// maybeCheckpoint wakes the checkpointer once enough log was written.
func (v *Volume) maybeCheckpoint() {
	if v.opts.CheckpointInterval < 0 {
		return
	}
	v.ckptMu.Lock()
	due := v.lw.bytesWritten()-v.ckptAt >= v.opts.CheckpointInterval
	v.ckptMu.Unlock()
	if due {
		select {
		case v.ckptKick <- struct{}{}:
		default:
		}
	}
}

func (v *Volume) checkpointLoop() {
	defer v.ckptWG.Done()
	for {
		select {
		case <-v.ckptDone:
			return
		case <-v.ckptKick:
			if err := v.checkpoint(); err != nil {
				v.log.Error("checkpoint failed; recovery will replay more log", "err", err)
			}
		case <-v.snapKick:
			v.ckptMu.Lock()
			err := v.materializeSnapshots()
			v.ckptMu.Unlock()
			if err != nil {
				v.log.Error("writing a snapshot map failed; it stays in memory and is retried at the next checkpoint", "err", err)
			}
		}
	}
}

// checkpoint writes the map and the snapshot tree as of the current log
// end, once the log is durable up to there and every snapshot's map has its
// own object; then it removes older checkpoints and snapshot objects that
// neither of the two newest checkpoints names.
func (v *Volume) checkpoint() error {
	v.ckptMu.Lock()
	defer v.ckptMu.Unlock()
	// A consistent cut: no append can run between reading the end and
	// cloning the map, because appends update the map under lw.mu.
	v.lw.mu.Lock()
	pos := v.lw.mu.segs[len(v.lw.mu.segs)-1].endPos()
	v.ckptAt = v.lw.mu.written
	v.mu.Lock()
	m := v.mu.m.clone()
	snaps := v.mu.snaps.copyMeta()
	v.mu.Unlock()
	v.lw.mu.Unlock()
	if pos == v.lastCkpt {
		return nil
	}
	if err := v.lw.flush(pos); err != nil {
		return err
	}
	if err := v.materializeSnapshots(); err != nil {
		return err
	}
	if err := writeCheckpoint(v.st, ckptName(v.name, pos), v.sb.uid, checkpoint{pos: pos, size: v.sb.size, m: m, snaps: snaps}); err != nil {
		return err
	}
	prev, prevSnaps := v.lastCkpt, v.lastCkptSnaps
	v.lastCkpt, v.lastCkptSnaps = pos, snaps.ids()
	positions, err := listCheckpoints(v.st, v.name)
	if err != nil {
		return nil // the new checkpoint is in place; cleanup waits for the next one
	}
	for _, p := range positions {
		if p != pos && p != prev {
			_ = v.st.Remove(ckptName(v.name, p))
		}
	}
	v.removeUnreferencedSnapObjects(prevSnaps)
	return nil
}

// materializeSnapshots writes VOL/snap/<id> for every snapshot whose map is
// only in memory, then lets the map go: it is loaded again on demand.
func (v *Volume) materializeSnapshots() error {
	v.mu.RLock()
	var todo []*snapshot
	for _, s := range v.mu.snaps.list {
		if !s.durable && s.m != nil {
			todo = append(todo, s)
		}
	}
	v.mu.RUnlock()
	for _, s := range todo {
		if err := v.lw.flush(s.pos); err != nil {
			return err
		}
		// Written aside and renamed into place: once the name exists the
		// map is complete (Clone waits for the name).
		tmp := fmt.Sprintf("%s.tmp-%016x", snapObject(v.name, s.id), newUID())
		err := writeCheckpoint(v.st, tmp, v.sb.uid, checkpoint{pos: s.pos, size: v.sb.size, m: s.m})
		if err == nil {
			err = v.st.Rename(tmp, snapObject(v.name, s.id))
		}
		if err != nil {
			_ = v.st.Remove(tmp)
			return fmt.Errorf("lfs: write snapshot %s of %s: %w", s.name, v.name, err)
		}
		v.mu.Lock()
		s.durable, s.m = true, nil
		v.mu.Unlock()
	}
	return nil
}

// removeUnreferencedSnapObjects deletes snapshot objects that neither the
// newest checkpoint nor the previous one (a recovery fallback) names, and
// that no snapshot in memory still needs.
func (v *Volume) removeUnreferencedSnapObjects(prevSnaps map[uint32]bool) {
	names, err := v.st.List(snapDir(v.name))
	if err != nil {
		return
	}
	v.mu.RLock()
	live := v.mu.snaps.ids()
	v.mu.RUnlock()
	for _, n := range names {
		id, err := strconv.ParseUint(n[:min(8, len(n))], 16, 32)
		if err != nil || len(n) < 8 {
			continue
		}
		if len(n) > 8 { // a temporary left by a crash while materializing (ckptMu excludes a running one)
			_ = v.st.Remove(path.Join(snapDir(v.name), n))
			continue
		}
		if !live[uint32(id)] && !v.lastCkptSnaps[uint32(id)] && !prevSnaps[uint32(id)] {
			_ = v.st.Remove(snapObject(v.name, uint32(id)))
		}
	}
}

// renewLoop renews the owner lock every third of the lease until Close. A
// renewal that finds a newer owner fences the log writer.
func (v *Volume) renewLoop() {
	defer v.ckptWG.Done()
	every := time.Duration(v.owner.rec.LeaseSeconds*float64(time.Second)) / 3
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-v.ckptDone:
			return
		case <-tick.C:
			if err := v.owner.renew(); err != nil {
				v.log.Error("renewing the owner lock failed", "err", err)
				if errors.Is(err, ErrFenced) {
					v.lw.fence(err)
				}
			}
		}
	}
}
