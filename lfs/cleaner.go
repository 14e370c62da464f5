package lfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/golang/snappy"
	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
	"github.com/hlfs/hlfs/snapshot"
)

// The cleaner (docs/design.md §3) frees the space of old segments: it
// copies the bytes some map still names into copy records at the log's
// end, points every map that named them (the live map and every snapshot's)
// at the copies, and deletes an old segment only after two checkpoints
// written after that, so both checkpoints recovery may start from, and the
// snapshot map generations they name, know only the copies. Copy records
// are never replayed by address, so a crash before those checkpoints leaves
// the old segment named and in place, and the copies as garbage.
//
// Segments at or after the oldest kept checkpoint are never cleaned (replay
// reads them), nor are segments a snapshot with clones names: the clones'
// maps point into them and this process cannot rewrite those.

// GCOptions tune a cleaning run.
type GCOptions struct {
	// Rate bounds the bytes copied per second; 0 means no bound.
	Rate int64
	// MaxCopy bounds the live bytes one pass copies; 0 means no bound.
	MaxCopy int64
	// MaxUtilization: segments whose share of live bytes is higher are
	// left alone (copying them frees little). 0 means 0.95.
	MaxUtilization float64
	// Defrag bounds the bytes a run may rewrite to defragment the live
	// map (defragPass): 0 none, DefragAll every fragmented window once.
	// The background cleaner does not defragment.
	Defrag int64
	// Progress, when not nil, is told the bytes copied so far and the
	// bytes the run plans to copy.
	Progress func(done, total int64)
}

// GCStats describe what cleaning did.
type GCStats struct {
	Passes          int   `json:"passes"`
	SegmentsCleaned int   `json:"segments_cleaned"` // segments whose live bytes were copied
	SegmentsDeleted int   `json:"segments_deleted"`
	BytesCopied     int64 `json:"bytes_copied"`
	BytesDeleted    int64 `json:"bytes_deleted"` // sizes of the deleted segment objects
	// SegmentsKept are segments a clone made during cleaning may name;
	// they stay until the snapshot it was made from is gone.
	SegmentsKept int `json:"segments_kept,omitempty"`
	// DefragWindows are the 1 MiB windows of the volume rewritten in
	// address order to defragment them, DefragBytes the bytes copied so
	// (also in BytesCopied).
	DefragWindows int   `json:"defrag_windows,omitempty"`
	DefragBytes   int64 `json:"defrag_bytes,omitempty"`
}

// maxUtilization is MaxUtilization with its default.
func (o GCOptions) maxUtilization() float64 {
	if o.MaxUtilization == 0 {
		return 0.95
	}
	return o.MaxUtilization
}

func (s *GCStats) add(o GCStats) {
	s.Passes += o.Passes
	s.SegmentsCleaned += o.SegmentsCleaned
	s.SegmentsDeleted += o.SegmentsDeleted
	s.BytesCopied += o.BytesCopied
	s.BytesDeleted += o.BytesDeleted
	s.SegmentsKept += o.SegmentsKept
	s.DefragWindows += o.DefragWindows
	s.DefragBytes += o.DefragBytes
}

// cleanerState is owned by whoever holds gcMu.
type cleanerState struct {
	sizes   map[uint64]int64 // sizes of closed segment objects (they never change)
	pending map[uint64]pendingDelete
	// copiedBytes are the log bytes the cleaner appended; rateAt and
	// rateClient are where clientWriteRate last looked.
	copiedBytes int64
	rateAt      time.Time
	rateClient  int64
	// poolBound is how many objects the segment pool may hold
	// (poolBoundNow), from the log writer's pace (notePace).
	// startedAtStep is its count of started segments at the last cleaner
	// step, busyAt the last step that saw it change; poolIdle is the
	// constant (tests change it).
	poolBound     int
	pace          []paceSample
	startedAtStep int64
	busyAt        time.Time
	poolIdle      time.Duration
}

// pendingDelete is a segment no map names any more, waiting for two
// checkpoints written after that before it may go.
type pendingDelete struct {
	readyAt int           // ckptCount at which it may be deleted
	snaps   []snapshot.ID // snapshots that named it before it was copied
}

// GC cleans the volume now: every segment whose share of live bytes is at
// most opts.MaxUtilization is copied forward and deleted, and segments
// nothing names are deleted, before it returns.
func (v *Volume) GC(opts GCOptions) (GCStats, error) {
	if err := v.checkOpen(true); err != nil {
		return GCStats{}, err
	}
	v.gcMu.Lock()
	defer v.gcMu.Unlock()
	var total GCStats
	work, err := v.anythingToClean(opts)
	if err != nil {
		return total, err
	}
	if !work && opts.Defrag != 0 {
		v.mu.Lock()
		live := v.mu.m.Clone()
		v.mu.Unlock()
		work = len(fragmentedWindows(live, v.lin.Branch, v.sb.size)) > 0
	}
	if !work {
		return total, nil
	}
	// Two checkpoints first: recovery then starts near the log's end, and
	// every older segment may be cleaned.
	if err := v.forceCheckpoints(); err != nil {
		return total, err
	}
	// Defragmenting first leaves the old records garbage in segments the
	// pass below then cleans.
	st, err := v.defragPass(opts, nil)
	st.BytesCopied += st.DefragBytes
	total.add(st)
	if err != nil {
		return total, err
	}
	st, err = v.cleanPass(opts, nil)
	total.add(st)
	if err != nil {
		return total, err
	}
	// Two checkpoints make everything copied or freed so far deletable.
	if err := v.forceCheckpoints(); err != nil {
		return total, err
	}
	st, err = v.deleteReady()
	total.add(st)
	return total, err
}

// anythingToClean tells whether a segment before the last one holds no
// live byte or few enough to clean, or one waits for deletion: otherwise
// gc would only write checkpoints (and the record that lets them land in a
// new segment, which the next run would then delete).
func (v *Volume) anythingToClean(opts GCOptions) (bool, error) {
	if len(v.gc.pending) > 0 {
		return true, nil
	}
	// Exact books answer without the recount the pass makes anyway.
	v.mu.RLock()
	live, exact := v.mu.books.copyCounts(), v.mu.books.exact
	v.mu.RUnlock()
	if !exact {
		var err error
		if live, _, err = v.recount(); err != nil {
			return false, err
		}
	}
	maxU := opts.maxUtilization()
	seqs, err := listSegments(v.st, v.name)
	if err != nil {
		return false, err
	}
	last := v.lw.firstInMemory() // later ones may have no object yet
	for _, seq := range seqs {
		if seq >= last {
			break
		}
		size, err := v.segmentObjectSize(seq, 0)
		if err != nil {
			return false, err
		}
		if float64(live[seq]) <= maxU*float64(size) {
			return true, nil
		}
	}
	return false, nil
}

// forceCheckpoints writes two checkpoints, even when nothing was written.
func (v *Volume) forceCheckpoints() error {
	for i := 0; i < 2; i++ {
		v.ckpt.Lock()
		err := v.checkpointLockedCkpt(true)
		v.ckpt.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// cleanPass recounts the books, queues segments nothing names for
// deletion, copies the chosen victims forward and writes a checkpoint.
// stop, when closed, ends the pass early (between batches).
func (v *Volume) cleanPass(opts GCOptions, stop <-chan struct{}) (GCStats, error) {
	var stats GCStats
	live, snapMaps, err := v.recount()
	if err != nil {
		return stats, err
	}
	if stats, err = v.deleteReady(); err != nil {
		return stats, err
	}
	in, err := v.gatherPlanInputs(live, snapMaps)
	if err != nil {
		return stats, err
	}
	plan := planPass(in, opts)
	for _, seq := range plan.free {
		v.gc.pending[seq] = pendingDelete{readyAt: v.ckptCountNow() + 2, snaps: in.namedBy[seq]}
	}
	if len(plan.victims) == 0 {
		return stats, nil
	}
	ranges := v.liveRanges(plan.victims, snapMaps)
	stats.Passes = 1
	var done int64
	for _, seq := range plan.victims {
		n, err := v.copyForward(seq, ranges[seq], snapMaps, opts, stop, func(k int64) {
			done += k
			if opts.Progress != nil {
				opts.Progress(done, plan.copy)
			}
		})
		stats.BytesCopied += n
		if err != nil {
			return stats, err
		}
		stats.SegmentsCleaned++
		v.gc.pending[seq] = pendingDelete{readyAt: v.ckptCountNow() + 2, snaps: in.namedBy[seq]}
		if isClosed(stop) {
			break
		}
	}
	if isClosed(stop) {
		return stats, nil // closing: Close writes the checkpoint
	}
	// The copies become what recovery finds once a checkpoint names them.
	return stats, v.checkpoint()
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (v *Volume) ckptCountNow() int {
	v.ckpt.Lock()
	defer v.ckpt.Unlock()
	return v.ckpt.count
}

// recount counts the books from scratch over the live map and every
// snapshot's map, and installs the result. gcMu is held (one recount at a
// time: changes since the cut are collected for it). It returns the counts and the
// snapshot maps it used (by id).
func (v *Volume) recount() (map[uint64]int64, map[snapshot.ID]*blockmap.Map, error) {
	var live *blockmap.Map
	var t *snapTable
	v.atLogCut(func(logCut) {
		v.mu.Lock()
		defer v.mu.Unlock()
		live, t = v.mu.m.Clone(), v.mu.snaps.copyWithMaps()
		v.mu.books.startRecount()
	})
	snapMaps, err := v.loadSnapshotMaps(t)
	if err != nil {
		v.mu.Lock()
		v.mu.books.recount = nil
		v.mu.Unlock()
		return nil, nil, err
	}
	counts := countLive(v.lin.Branch, live, slices.Collect(maps.Values(snapMaps)))
	v.mu.Lock()
	v.mu.books.finishRecount(counts)
	counts = v.mu.books.copyCounts()
	v.mu.Unlock()
	return counts, snapMaps, nil
}

// loadSnapshotMaps returns the map of every snapshot of t by id. Maps read
// from map objects are cached (they never change) up to snapCacheExtents
// extents, so passes do not read every snapshot map again.
func (v *Volume) loadSnapshotMaps(t *snapTable) (map[snapshot.ID]*blockmap.Map, error) {
	out := make(map[snapshot.ID]*blockmap.Map, t.tree.Len())
	v.snapCache.Lock()
	defer v.snapCache.Unlock()
	if v.snapCache.maps == nil {
		v.snapCache.maps = make(map[snapshot.ObjectID]*blockmap.Map)
	}
	keep := make(map[snapshot.ObjectID]*blockmap.Map)
	cached := 0
	for _, s := range t.list() {
		m := s.m
		if m == nil {
			g := snapshot.ObjectID{ID: s.ID, Gen: s.Gen}
			if m = v.snapCache.maps[g]; m == nil {
				var err error
				if m, err = loadSnapMap(v.st, v.name, v.sb.uid, s.ID, s.Gen); err != nil {
					return nil, fmt.Errorf("lfs: load snapshot %s@%s: %w", v.name, s.Name, err)
				}
			}
			if cached+m.Len() <= snapCacheExtents {
				keep[g] = m
				cached += m.Len()
			}
		}
		out[s.ID] = m
	}
	v.snapCache.maps = keep // what the table no longer names goes
	return out, nil
}

// snapCacheExtents bounds the snapshot map extents the cleaner keeps in
// memory between passes (about 48 bytes each).
const snapCacheExtents = 4 << 20

// gatherPlanInputs collects what planPass decides from: the store's
// segments, checkpoints and keep objects, the clone registrations, and the
// sizes of the segments that hold live bytes. live are the recounted
// books, snapMaps every snapshot's map. gcMu is held.
func (v *Volume) gatherPlanInputs(live map[uint64]int64, snapMaps map[snapshot.ID]*blockmap.Map) (planInputs, error) {
	in := planInputs{live: live, sizes: map[uint64]int64{}, pending: map[uint64]bool{}, namedBy: map[uint64][]snapshot.ID{}}
	var err error
	if in.limit, err = v.cleanLimit(); err != nil || in.limit <= 1 {
		return in, err
	}
	if in.kept, err = v.keptSegments(); err != nil {
		return in, err
	}
	pinnedSnaps, err := v.snapshotsWithClones()
	if err != nil {
		return in, err
	}
	if in.pinned, err = v.clonePinnedSegments(pinnedSnaps, snapMaps); err != nil {
		return in, err
	}
	// Which snapshots name which segments, for the re-check before deleting.
	for id, m := range snapMaps {
		for seq := range v.ownSegments(m) {
			in.namedBy[seq] = append(in.namedBy[seq], id)
		}
	}
	for seq := range v.gc.pending {
		in.pending[seq] = true
	}
	if in.segments, err = listSegments(v.st, v.name); err != nil {
		return in, err
	}
	for _, seq := range in.segments {
		if seq < in.limit && live[seq] > 0 {
			if in.sizes[seq], err = v.segmentObjectSize(seq, in.limit); err != nil {
				return in, err
			}
		}
	}
	return in, nil
}

// liveRanges returns the live byte ranges of each victim: the union over
// the live map and every snapshot's map.
func (v *Volume) liveRanges(victims []uint64, snapMaps map[snapshot.ID]*blockmap.Map) map[uint64][]recRange {
	set := make(map[uint64]bool, len(victims))
	for _, seq := range victims {
		set[seq] = true
	}
	v.mu.Lock() // Clone writes to the tree it copies
	all := []*blockmap.Map{v.mu.m.Clone()}
	v.mu.Unlock()
	for _, m := range snapMaps {
		all = append(all, m)
	}
	out := make(map[uint64][]recRange, len(victims))
	for _, r := range rangesIn(v.lin.Branch, all, set) {
		out[uint64(r.seq)] = append(out[uint64(r.seq)], r)
	}
	return out
}

// cleanLimit is the first segment the cleaner must not touch: recovery
// replays from the oldest checkpoint kept on, so that segment and every
// later one stay. 0 means no checkpoint exists yet.
func (v *Volume) cleanLimit() (uint64, error) {
	ps, err := listCheckpoints(v.st, v.name)
	if err != nil || len(ps) == 0 {
		return 0, err
	}
	return ps[len(ps)-1].Seq, nil
}

// segmentObjectSize is the size of segment seq's object. Sizes of segments
// before limit (complete: a checkpoint came after them) are cached.
func (v *Volume) segmentObjectSize(seq, limit uint64) (int64, error) {
	if n, ok := v.gc.sizes[seq]; ok {
		return n, nil
	}
	n, err := objectSize(v.st, v.lw.attempts.name(v.name, seq))
	if err != nil {
		return 0, err
	}
	if seq < limit {
		v.gc.sizes[seq] = n
	}
	return n, nil
}

// snapshotsWithClones returns the snapshots a clone registration names,
// including registrations of clones being made (no superblock yet) and
// ones a crash left: a clone's map may point into what they name.
func (v *Volume) snapshotsWithClones() (map[snapshot.ID]bool, error) {
	names, err := v.st.List(clonesDir(v.name))
	if err != nil {
		return nil, err
	}
	var snapNames []string
	for _, n := range names {
		b, err := readObject(v.st, path.Join(clonesDir(v.name), n))
		if errors.Is(err, objstore.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		snapNames = append(snapNames, string(b))
	}
	out := map[snapshot.ID]bool{}
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, n := range snapNames {
		if s, ok := v.mu.snaps.tree.ByName(n); ok {
			out[s.ID] = true
		}
	}
	return out, nil
}

// clonePinnedSegments returns the segments that a snapshot with clones
// names, in its map now or in any generation of its map object in the
// store: a clone's map started from one of them.
func (v *Volume) clonePinnedSegments(pinnedSnaps map[snapshot.ID]bool, snapMaps map[snapshot.ID]*blockmap.Map) (map[uint64]bool, error) {
	pinned := make(map[uint64]bool)
	mark := func(m *blockmap.Map) { maps.Copy(pinned, v.ownSegments(m)) }
	if len(pinnedSnaps) == 0 {
		return pinned, nil
	}
	for id := range pinnedSnaps {
		if m := snapMaps[id]; m != nil {
			mark(m)
		}
	}
	names, err := v.st.List(snapshot.Dir(v.name))
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		g, ok := snapshot.ParseObjectName(n)
		if !ok || !pinnedSnaps[g.ID] {
			continue
		}
		m, err := loadSnapMap(v.st, v.name, v.sb.uid, g.ID, g.Gen)
		if errors.Is(err, objstore.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		mark(m)
	}
	return pinned, nil
}

// ownSegments returns the segments of the volume's own branch that m names.
func (v *Volume) ownSegments(m *blockmap.Map) map[uint64]bool {
	out := make(map[uint64]bool)
	m.Ascend(func(e blockmap.Extent) bool {
		if e.Branch == v.lin.Branch {
			out[uint64(e.Seq)] = true
		}
		return true
	})
	return out
}

func gcDir(vol string) string { return path.Join(vol, "gc") }
func keepName(vol string, seq uint64) string {
	return path.Join(gcDir(vol), fmt.Sprintf("keep-%016x", seq))
}

// keptSegments returns the segments a keep object holds, and removes keep
// objects whose snapshots are all gone.
func (v *Volume) keptSegments() (map[uint64]bool, error) {
	names, err := v.st.List(gcDir(v.name))
	if err != nil {
		return nil, err
	}
	out := map[uint64]bool{}
	for _, n := range names {
		hex, ok := strings.CutPrefix(n, "keep-")
		seq, err := strconv.ParseUint(hex, 16, 64)
		if !ok || err != nil || len(hex) != 16 {
			continue
		}
		b, err := readObject(v.st, path.Join(gcDir(v.name), n))
		if err != nil {
			return nil, err
		}
		held := false
		v.mu.RLock()
		for i := 0; i+4 <= len(b); i += 4 {
			_, ok := v.mu.snaps.tree.ByID(snapshot.ID(binary.LittleEndian.Uint32(b[i:])))
			held = held || ok
		}
		v.mu.RUnlock()
		if held {
			out[seq] = true
		} else {
			_ = v.st.Remove(path.Join(gcDir(v.name), n))
		}
	}
	return out, nil
}

// copyBatch bounds the copy records appended under the cleaner's locks at
// once, so snapshots and checkpoints wait little.
const copyBatch = 1 << 20

// copyForward copies the live ranges of segment seq into copy records and
// points every map at them. It returns the bytes copied.
//
// maps caches the snapshot maps by id as this pass last left them.
func (v *Volume) copyForward(seq uint64, ranges []recRange, maps map[snapshot.ID]*blockmap.Map, opts GCOptions, stop <-chan struct{}, progress func(int64)) (int64, error) {
	k := segKey{branch: v.lin.Branch, seq: seq}
	buf, err := readObject(v.st, v.readers.name(k))
	if err != nil {
		return 0, fmt.Errorf("lfs: clean segment %s: %w", v.readers.name(k), err)
	}
	var copied int64
	start := time.Now()
	b := &recordBatch{}
	var olds [][]recRange
	flush := func() error {
		if len(b.lens) == 0 {
			return nil
		}
		err := v.applyCopies(b, olds, maps)
		n := int64(0)
		for _, h := range b.hdrs {
			n += int64(h.LogicalLen)
		}
		copied += n
		v.metrics.cleanerCopied.Add(n)
		progress(n)
		b.reset()
		olds = olds[:0]
		if err == nil && opts.Rate > 0 {
			// Stay under the rate: foreground I/O shares the log and the store.
			if want := time.Duration(float64(copied) / float64(opts.Rate) * float64(time.Second)); want > time.Since(start) {
				select {
				case <-time.After(want - time.Since(start)):
				case <-stop:
				}
			}
		}
		return err
	}
	for _, r := range ranges {
		recOff := int(r.payOff) - segment.HeaderSize
		if recOff < 0 || recOff >= len(buf) {
			return copied, corruptf(v.readers.name(k), int64(recOff), "a map names a record beyond the segment's end")
		}
		h, payload, err := segment.Decode(buf[recOff:], k.seq)
		if err == nil && (h.Type != r.ext.RecordType() || int64(h.Addr) != r.base || r.hi > h.LogicalLen) {
			err = fmt.Errorf("record %+v does not hold the bytes a map names", h)
		}
		if err != nil {
			return copied, corruptf(v.readers.name(k), int64(recOff), "%v", err)
		}
		data := payload
		if h.Flags&segment.FlagSnappy != 0 {
			if data, err = snappy.Decode(nil, payload); err != nil || len(data) != int(h.LogicalLen) {
				return copied, corruptf(v.readers.name(k), int64(recOff), "snappy payload does not decode to %d bytes", h.LogicalLen)
			}
		}
		ch := segment.Header{Type: segment.TypeCopy, Addr: uint64(r.base) + uint64(r.lo), LogicalLen: r.hi - r.lo}
		out := data[r.lo:r.hi]
		if r.lo == 0 && r.hi == h.LogicalLen {
			ch.Flags, out = h.Flags, payload // the whole record: its payload as it is
		} else if v.sb.compress {
			if c := snappy.Encode(nil, out); len(c) <= len(out)-len(out)/8 {
				ch.Flags, out = segment.FlagSnappy, c
			}
		}
		b.add(ch, out)
		olds = append(olds, []recRange{r})
		if len(b.buf) >= copyBatch {
			if err := flush(); err != nil {
				return copied, err
			}
		}
	}
	return copied, flush()
}

// applyCopies appends a batch of copy records (olds[i] are the record
// ranges record i copies, in address order, end to end from its first
// byte) and points the live map and every snapshot's map at them. No
// snapshot operation or checkpoint runs meanwhile. cache holds snapshot
// maps by id as the pass last left them; it is updated.
func (v *Volume) applyCopies(b *recordBatch, olds [][]recRange, cache map[snapshot.ID]*blockmap.Map) error {
	v.snapMu.Lock()
	defer v.snapMu.Unlock()
	v.ckpt.Lock()
	defer v.ckpt.Unlock()
	// Every snapshot's map, copied on write: readers and the map objects
	// being written keep the maps they hold.
	v.mu.RLock()
	t := v.mu.snaps.copyWithMaps()
	v.mu.RUnlock()
	for _, s := range t.list() {
		if s.m == nil && cache[s.ID] != nil {
			s.m = cache[s.ID] // a map object the pass has read, or written
		}
	}
	maps, err := v.loadSnapshotMaps(t)
	if err != nil {
		return err
	}
	work := make(map[snapshot.ID]*blockmap.Map, len(maps))
	for id, m := range maps {
		work[id] = m.Clone()
		cache[id] = m
	}
	changed := map[snapshot.ID]bool{}
	_, err = v.lw.append(b.buf, b.lens, b.refs, nil, func(i int, p placed) {
		h := b.hdrs[i]
		to := blockmap.Extent{Seq: uint32(p.seq), PayOff: uint32(p.recOff + segment.HeaderSize), PayLen: h.PayloadLen,
			Flags: blockmap.FlagsOf(h), Branch: v.lin.Branch}
		toBase := int64(h.Addr) // the copy's data starts at its address
		v.mu.Lock()
		defer v.mu.Unlock()
		for _, r := range olds[i] {
			moved := v.mu.m.Redirect(r.ext, r.base, r.lo, r.hi, to, toBase, nil)
			for id, m := range work {
				before := len(moved)
				if moved = m.Redirect(r.ext, r.base, r.lo, r.hi, to, toBase, moved); len(moved) > before {
					changed[id] = true
				}
			}
			n := unionLen(moved)
			v.mu.books.add(uint64(r.seq), -n)
			v.mu.books.add(p.seq, n)
		}
	})
	if err != nil {
		return err
	}
	v.gc.copiedBytes += int64(len(b.buf))
	// The changed snapshot maps wait in memory for their next generation,
	// written before the next checkpoint.
	v.mu.Lock()
	for id := range changed {
		if s, ok := v.mu.snaps.byID(id); ok {
			s.m, s.durable = work[id], false
		}
		cache[id] = work[id]
	}
	v.mu.Unlock()
	return nil
}

// unionLen is the number of bytes the spans cover together.
func unionLen(spans []blockmap.Span) int64 {
	sort.Slice(spans, func(i, j int) bool { return spans[i].Lo < spans[j].Lo })
	var n int64
	reach := int64(-1) << 62
	for _, s := range spans {
		lo := max(s.Lo, reach)
		if s.Hi > lo {
			n += s.Hi - lo
			reach = s.Hi
		}
	}
	return n
}

// deleteReady deletes the pending segments that two checkpoints have passed,
// unless a clone was made meanwhile from a snapshot that named them.
func (v *Volume) deleteReady() (GCStats, error) {
	var stats GCStats
	count := v.ckptCountNow()
	var ready []uint64
	for seq, p := range v.gc.pending {
		if p.readyAt <= count {
			ready = append(ready, seq)
		}
	}
	if len(ready) == 0 {
		return stats, nil
	}
	if busy, err := v.readersActive(); err != nil || busy {
		return stats, err // a read-only open reads through maps that may name them
	}
	if err := v.confirmOwner("deleting segments"); err != nil {
		return stats, err // a paused owner must not delete what a new one reads
	}
	v.gc.poolBound = v.poolBoundNow()
	slices.Sort(ready)
	pinned, err := v.snapshotsWithClones()
	if err != nil {
		return stats, err
	}
	_, attempts, err := segmentAttempts(v.st, v.name)
	if err != nil {
		return stats, err
	}
	for _, seq := range ready {
		p := v.gc.pending[seq]
		var holders []snapshot.ID
		for _, id := range p.snaps {
			if pinned[id] {
				holders = append(holders, id)
			}
		}
		if len(holders) > 0 {
			// A clone made while this segment was being copied may have
			// loaded the snapshot map that named it.
			var b []byte
			for _, id := range holders {
				b = binary.LittleEndian.AppendUint32(b, uint32(id))
			}
			if err := writeObject(v.st, keepName(v.name, seq), b); err != nil && !errors.Is(err, objstore.ErrExist) {
				return stats, err
			}
			delete(v.gc.pending, seq)
			stats.SegmentsKept++
			continue
		}
		size, err := v.segmentObjectSize(seq, 0)
		if err != nil && !errors.Is(err, objstore.ErrNotExist) {
			return stats, err
		}
		if err := v.deleteSegment(seq, attempts[seq]); err != nil {
			return stats, err
		}
		delete(v.gc.pending, seq)
		delete(v.gc.sizes, seq)
		v.indexGen.Add(1)
		stats.SegmentsDeleted++
		stats.BytesDeleted += size
	}
	return stats, nil
}

// diffCounts describes the first difference between two books, "" when
// equal.
func diffCounts(have, want map[uint64]int64) string {
	seqs := map[uint64]bool{}
	for s := range have {
		seqs[s] = true
	}
	for s := range want {
		seqs[s] = true
	}
	sorted := make([]uint64, 0, len(seqs))
	for s := range seqs {
		sorted = append(sorted, s)
	}
	slices.Sort(sorted)
	for _, s := range sorted {
		if have[s] != want[s] {
			return fmt.Sprintf("segment %d: %d live bytes booked, %d counted", s, have[s], want[s])
		}
	}
	return ""
}

// deleteSegment removes every attempt object of segment seq, once no read
// that may have looked at a map naming it is still running.
func (v *Volume) deleteSegment(seq uint64, attempts []int) error {
	v.readGate.Lock()
	defer v.readGate.Unlock()
	v.readers.forget(segKey{branch: v.lin.Branch, seq: seq})
	pooled := -1
	for _, a := range attempts {
		if err := v.retireSegmentObject(segObjName(v.name, seq, a), &pooled); err != nil && !errors.Is(err, objstore.ErrNotExist) {
			return fmt.Errorf("lfs: delete cleaned segment %s: %w", segObjName(v.name, seq, a), err)
		}
	}
	return nil
}
