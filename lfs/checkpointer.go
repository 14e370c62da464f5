package lfs

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/segment"
	"github.com/hlfs/hlfs/snapshot"
)

// ckptRunAhead: how far past the last checkpoint's cut writes go on while
// one is being written.
var ckptRunAhead = int64(256 << 20)

// maybeCheckpoint wakes the checkpointer once enough log was written.
func (v *Volume) maybeCheckpoint() {
	if v.opts.CheckpointInterval < 0 {
		return
	}
	since := v.lw.bytesWritten() - v.ckpt.at.Load()
	if since >= ckptRunAhead {
		// Backpressure: far past the last checkpoint's cut, wait for the
		// one running (the cleaner deletes only behind checkpoints).
		v.ckpt.Lock()
		v.ckpt.Unlock()
	}
	if since >= v.opts.CheckpointInterval {
		select {
		case v.ckptKick <- struct{}{}:
		default:
		}
	}
}

func (v *Volume) checkpointLoop() {
	defer v.backgroundWG.Done()
	for {
		select {
		case <-v.stopBackground:
			return
		case <-v.ckptKick:
			if err := v.checkpoint(); err != nil {
				v.log.Error("checkpoint failed; recovery will replay more log", "err", err)
			}
		case <-v.snapKick:
			v.ckpt.Lock()
			err := v.materializeCurrent()
			v.ckpt.Unlock()
			if err != nil {
				v.log.Error("writing a snapshot map failed; it stays in memory and is retried at the next checkpoint", "err", err)
			}
		}
	}
}

// checkpoint writes the map, the space books and the snapshot tree as of
// the current log end, once the log is durable up to there and every
// snapshot's map has its own object; then it removes older checkpoints and
// snapshot map objects that neither of the two newest checkpoints names.
func (v *Volume) checkpoint() error {
	v.ckpt.Lock()
	defer v.ckpt.Unlock()
	return v.checkpointLockedCkpt(false)
}

// checkpointLockedCkpt is checkpoint with ckpt held. With force it writes one
// even when nothing was appended since the last (the cleaner needs a newer
// checkpoint before it may delete): it appends a record that changes
// nothing first.
func (v *Volume) checkpointLockedCkpt(force bool) error {
	var before logCut
	v.lw.atCut(func(c logCut) { before = c })
	pos, empty := before.end, before.activeEmpty
	// A forced checkpoint lands in the newest segment, so the cleaner may
	// take every older one (an empty active segment would put it at the end
	// of the previous one).
	if force && (pos == v.ckpt.last || empty) {
		nop := nopRecord()
		if _, err := v.lw.append(nop, []int{len(nop)}, nil, nil, func(int, placed) {}); err != nil {
			return err
		}
	}
	// A consistent cut: the map, tree and books as the log up to pos
	// leaves them.
	var m *blockmap.Map
	var snaps *snapTable
	var live map[uint64]int64
	var exact bool
	v.lw.atCut(func(c logCut) {
		pos = c.end
		v.ckpt.at.Store(c.written)
		v.mu.Lock()
		defer v.mu.Unlock()
		m, snaps = v.mu.m.Clone(), v.mu.snaps.copyWithMaps()
		live, exact = v.mu.books.copyCounts(), v.mu.books.exact
	})
	if pos == v.ckpt.last {
		return nil
	}
	// A paused owner that lost the volume must not write or remove
	// checkpoints the new owner relies on.
	if err := v.flushTo(pos); err != nil {
		return err
	}
	// The cut's own copies get the generations written for them.
	if err := v.materializeSnapshotsLockedCkpt(snaps); err != nil {
		return err
	}
	if err := writeCheckpoint(v.st, ckptName(v.name, pos), v.sb.uid,
		checkpoint{pos: pos, size: v.sb.size, m: m, snaps: snaps.tree, live: live, exact: exact}); err != nil {
		return err
	}
	prev, prevSnaps := v.ckpt.last, v.ckpt.lastSnaps
	v.ckpt.last, v.ckpt.lastSnaps = pos, snaps.tree.Objects()
	v.ckpt.count++
	v.indexGen.Add(1)
	positions, err := listCheckpoints(v.st, v.name)
	if err != nil || v.confirmOwner("removing old checkpoints") != nil {
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

// nopRecord encodes a record that moves the log end and changes nothing: a
// copy record (never applied by replay) of one byte. A new one each time:
// append seals records in place.
func nopRecord() []byte {
	return segment.Append(nil, segment.Header{Type: segment.TypeCopy, LogicalLen: 1}, []byte{0})
}

// materializeSnapshotsLockedCkpt writes a map object for every snapshot of t whose
// map is only in memory, as the next generation, and lets the volume's own
// record of it drop the map (it is loaded again on demand) unless the
// cleaner changed it meanwhile. t is a copy (copyWithMaps); its entries get
// the generations written. ckpt is held.
func (v *Volume) materializeSnapshotsLockedCkpt(t *snapTable) error {
	for _, s := range t.list() {
		if s.durable || s.m == nil {
			continue
		}
		// The map names records up to its snapshot, or, once the cleaner
		// moved its data, copies up to the log's end: durable first.
		if err := v.lw.flush(v.lw.end()); err != nil {
			return err
		}
		// Written aside and renamed into place: once the name exists the
		// map is complete (Clone waits for the name).
		gen := s.nextGen
		final := snapshot.ObjectName(v.name, s.ID, gen)
		tmp := fmt.Sprintf("%s.tmp-%016x", final, newUID())
		err := writeCheckpoint(v.st, tmp, v.sb.uid, checkpoint{pos: s.Pos, size: v.sb.size, m: s.m})
		if err == nil {
			err = v.st.Rename(tmp, final)
		}
		if err != nil {
			_ = v.st.Remove(tmp)
			return fmt.Errorf("lfs: write snapshot %s of %s: %w", s.Name, v.name, err)
		}
		t.wroteGen(s.ID, gen)
		v.mu.Lock()
		if live, ok := v.mu.snaps.byID(s.ID); ok && live.m == s.m {
			v.mu.snaps.wroteGen(s.ID, gen)
			live.m = nil
		}
		v.mu.Unlock()
	}
	return nil
}

// materializeCurrent writes the map objects of the current snapshots.
func (v *Volume) materializeCurrent() error {
	v.mu.RLock()
	t := v.mu.snaps.copyWithMaps()
	v.mu.RUnlock()
	return v.materializeSnapshotsLockedCkpt(t)
}

// removeUnreferencedSnapObjects deletes snapshot map objects that neither
// the newest checkpoint nor the previous one (a recovery fallback) names,
// and that no snapshot in memory still uses, and temporaries a crash left.
// It deletes nothing while a fresh read lease exists: a read-only open
// (snapshot ls, du, fsck, export) loads the generations the checkpoint it
// read names, maybe long after it read it; a later checkpoint removes them.
func (v *Volume) removeUnreferencedSnapObjects(prevSnaps map[snapshot.ObjectID]bool) {
	if busy, err := v.readersActive(); err != nil || busy {
		return
	}
	names, err := v.st.List(snapshot.Dir(v.name))
	if err != nil {
		return
	}
	v.mu.RLock()
	live := v.mu.snaps.tree.Objects()
	v.mu.RUnlock()
	// A clone may have started from any generation of its source snapshot
	// (even one a crash left unnamed): those stay while it may.
	withClones, err := v.snapshotsWithClones()
	if err != nil {
		return
	}
	for _, n := range names {
		g, ok := snapshot.ParseObjectName(n)
		if ok && withClones[g.ID] {
			continue
		}
		if !ok {
			if strings.Contains(n, ".tmp-") { // left by a crash while materializing (ckpt excludes a running one)
				_ = v.st.Remove(path.Join(snapshot.Dir(v.name), n))
			}
			continue
		}
		if !live[g] && !v.ckpt.lastSnaps[g] && !prevSnaps[g] {
			_ = v.st.Remove(snapshot.ObjectName(v.name, g.ID, g.Gen))
		}
	}
}

// renewOwner renews the owner lock; Open runs it every third of the lease.
// A renewal that finds a newer owner fences the log writer.
func (v *Volume) renewOwner() {
	if err := v.owner.renew(); err != nil {
		v.log.Error("renewing the owner lock failed", "err", err)
		if errors.Is(err, ErrFenced) {
			v.lw.fence(err)
		}
	}
}

// every runs fn every d in the background until Close, and at once
// whenever wake (nil: never) is signalled.
func (v *Volume) every(d time.Duration, wake <-chan struct{}, fn func()) {
	runEvery(&v.backgroundWG, v.stopBackground, d, wake, fn)
}

// runEvery runs fn every d in the background until stop is closed, and at
// once whenever wake (nil: never) is signalled; wg tracks the goroutine.
func runEvery(wg *sync.WaitGroup, stop <-chan struct{}, d time.Duration, wake <-chan struct{}, fn func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(d)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			case <-wake:
			}
			fn()
		}
	}()
}
