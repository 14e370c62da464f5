package lfs

import "path"

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
		}
	}
}

// checkpoint writes the map as of the current log end, once the log is
// durable up to there, and removes all but the previous checkpoint.
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
	v.mu.Unlock()
	v.lw.mu.Unlock()
	if pos == v.lastCkpt {
		return nil
	}
	if err := v.lw.flush(pos); err != nil {
		return err
	}
	if err := writeCheckpoint(v.st, v.name, v.sb.uid, checkpoint{pos: pos, size: v.sb.size, m: m}); err != nil {
		return err
	}
	prev := v.lastCkpt
	v.lastCkpt = pos
	positions, err := listCheckpoints(v.st, v.name)
	if err != nil {
		return nil // the new checkpoint is in place; cleanup waits for the next one
	}
	for _, p := range positions {
		if p != pos && p != prev {
			_ = v.st.Remove(path.Join(ckptDir(v.name), path.Base(ckptName(v.name, p))))
		}
	}
	return nil
}
