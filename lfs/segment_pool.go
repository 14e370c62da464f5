package lfs

import (
	"errors"
	"path"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
)

// Segment file recycling (docs/design.md "Recycled segment files",
// docs/format.md): on a store that can (objstore.Recycler: the local
// store), the cleaner moves the objects of segments it deletes into the
// volume's pool folder, up to the pool's bound (poolBoundNow), and the log
// writer writes new segments over them. Overwriting a file whose blocks
// are allocated and whose pages are cached costs a fraction of writing a
// new one (bench/README.md "1M sequential writes").
//
// Safety rests on two rules. Every record of a segment this binary writes
// is version 4, its checksum seeded with the segment's seq, so the stale
// records a recycled file holds past the new segment's end never validate
// there: after a crash they are a torn tail like any other. And only
// segments whose records are all version 4 go to the pool (their header
// record says so), so no older, unseeded record can be stale in one.
// Closing a recycled object cuts its stale tail and syncs it, so a segment
// before the last one never holds stale bytes.

// defaultSegmentPool is how many deleted segments' objects a volume keeps
// for reuse at least.
const defaultSegmentPool = 8

// poolDemandFactor bounds the pool under load: it holds up to what the
// log writer started in the last poolWindow (the cleaner deletes in
// bursts, and a new file costs far more than a recycled one on this
// project's VMs, docs/design.md §3), up to this many times
// Options.SegmentPool.
const poolDemandFactor = 8

// poolWindow is how far back the pool's bound looks at the log writer's
// pace: deletion bursts come about a second apart, further when
// checkpoints are slow, and the pool must carry the writer from one to the
// next. A bound from the segments started between two deletions (halved
// at most at each) swung from 38 to 8 within a second when woken steps
// ran back to back, removing files the writer then created anew.
const poolWindow = 3 * time.Second

// paceSample is the log writer's count of started segments at a time.
type paceSample struct {
	at      time.Time
	started int64
}

func poolDir(vol string) string { return path.Join(vol, "pool") }

// segmentPool is the pool's bound from Options (0: the default, negative:
// no recycling).
func (o Options) segmentPool() int {
	switch {
	case o.SegmentPool == 0:
		return defaultSegmentPool
	case o.SegmentPool < 0:
		return 0
	}
	return o.SegmentPool
}

// poolBoundNow is how many objects the pool may hold from a deletion on:
// the segments the log writer started in the last poolWindow, so that one
// burst of deletions covers the writer until the next, between
// Options.SegmentPool and poolDemandFactor times that. gcMu is held.
func (v *Volume) poolBoundNow() int {
	least := int64(v.opts.segmentPool())
	started := v.notePace(time.Now())
	demand := started - v.gc.pace[0].started
	return int(min(max(least, demand), poolDemandFactor*least))
}

// notePace samples the log writer's count of started segments and returns
// it, keeping the samples of the last poolWindow and the newest older one
// (the base the window's demand is counted from). It runs at every
// cleaner step and deletion. gcMu is held.
func (v *Volume) notePace(now time.Time) int64 {
	started := v.lw.started.Load()
	v.gc.pace = append(v.gc.pace, paceSample{at: now, started: started})
	old := 0
	for old+1 < len(v.gc.pace) && now.Sub(v.gc.pace[old+1].at) >= poolWindow {
		old++
	}
	v.gc.pace = v.gc.pace[old:]
	return started
}

// poolIdle is how long the log writer starts no segment before the pool
// shrinks back: a guest writing in bursts keeps it.
const poolIdle = 10 * time.Second

// trimIdlePool shrinks the pool back to Options.SegmentPool objects once
// the log writer started no segment for poolIdle (seen at cleaner steps):
// the load that needed more has passed. gcMu is held.
func (v *Volume) trimIdlePool() {
	now := time.Now()
	if started := v.notePace(now); started != v.gc.startedAtStep {
		v.gc.startedAtStep, v.gc.busyAt = started, now
		return
	}
	if _, ok := v.st.(objstore.Recycler); !ok || now.Sub(v.gc.busyAt) < v.gc.poolIdle || v.gc.poolBound <= v.opts.segmentPool() {
		return
	}
	v.gc.poolBound = v.opts.segmentPool()
	names, err := v.st.List(poolDir(v.name))
	if err != nil {
		return
	}
	for _, n := range names[min(len(names), v.gc.poolBound):] {
		_ = v.st.Remove(path.Join(poolDir(v.name), n))
	}
}

// createSegmentObject creates a segment object, over a pooled one when
// recycle is set and the store can (recycled reports it did).
func createSegmentObject(st objstore.Store, vol, name string, recycle bool) (w objstore.Writer, recycled bool, err error) {
	if rc, ok := st.(objstore.Recycler); ok && recycle {
		w, recycled, err = rc.CreateRecycled(name, poolDir(vol))
		return w, recycled, err
	}
	w, err = st.Create(name)
	return w, false, err
}

// retireSegmentObject removes a deleted segment's object, or moves it into
// the pool when the pool has room (gc.poolBound, which deleteReady sets
// before it deletes) and the object holds only seeded records. pooled
// counts the pool's objects (-1: not listed yet).
func (v *Volume) retireSegmentObject(name string, pooled *int) error {
	if rc, ok := v.st.(objstore.Recycler); ok && v.opts.segmentPool() > 0 {
		if *pooled < 0 {
			names, err := v.st.List(poolDir(v.name))
			if err != nil {
				return err
			}
			*pooled = len(names)
		}
		if *pooled < v.gc.poolBound && seededSegment(v.st, name) {
			err := rc.Recycle(name, poolDir(v.name))
			if err == nil {
				*pooled++
				return nil
			}
			if !errors.Is(err, objstore.ErrExist) {
				return err
			}
			// A pool entry of that name (a crash between two steps of an
			// earlier run): remove this one instead.
		}
	}
	return v.st.Remove(name)
}

// seededSegment reports whether the object's first record, its segment
// header, is version 4 or later: every record of such a segment is seeded
// with its seq (a writer never mixes versions in a segment).
func seededSegment(st objstore.Store, name string) bool {
	b, err := objectPrefix(st, name, segment.HeaderSize)
	if err != nil {
		return false
	}
	h, err := segment.DecodeHeader(b)
	return err == nil && h.Type == segment.TypeSegmentHeader && h.Version >= segment.VersionSeeded
}

// objectPrefix reads the first n bytes of an object.
func objectPrefix(st objstore.Store, name string, n int) ([]byte, error) {
	r, err := st.Open(name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b := make([]byte, n)
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, err
	}
	return b, nil
}

// emptyPool removes the pool's objects when the volume closes: a closed
// volume keeps no space it does not use. Best effort: a leftover is
// reused or removed by the next owner.
func (v *Volume) emptyPool() {
	if _, ok := v.st.(objstore.Recycler); !ok {
		return
	}
	names, err := v.st.List(poolDir(v.name))
	if err != nil {
		return
	}
	for _, n := range names {
		_ = v.st.Remove(path.Join(poolDir(v.name), n))
	}
	_ = v.st.Remove(poolDir(v.name))
}

// recycledUnwritten reports whether the object of segment seq starts with
// the header of an earlier segment: a recycled file to which the crash
// came before the new segment's header reached the disk, so no flush ever
// covered any of it.
func recycledUnwritten(st objstore.Store, name string, seq uint64) bool {
	b, err := objectPrefix(st, name, segment.SegmentHeaderLen)
	if err != nil {
		return false
	}
	h, err := segment.DecodeHeader(b)
	if err != nil || h.Type != segment.TypeSegmentHeader {
		return false
	}
	_, stale := segment.StaleSeq(b, seq)
	return stale
}
