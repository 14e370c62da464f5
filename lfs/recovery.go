package lfs

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
	"github.com/hlfs/hlfs/snapshot"
)

// volMeta is what recovery needs to know about a volume.
type volMeta struct {
	name string
	sb   superblock
	lin  snapshot.Lineage
}

// replayed is the state rebuilt from the store.
type replayed struct {
	mapState
	ckpt segment.Pos // checkpoint the replay started from ((0,0): none)
	// ckptSnaps are the snapshot map objects the checkpoint names.
	ckptSnaps map[snapshot.ObjectID]bool
	end       segment.Pos // after the last valid record
	// cut are the segments after the end of the log; the next writer
	// moves them to VOL/lost+found/ (never deletes them). cutWhy says why
	// the log ended before them.
	cut    []uint64
	cutWhy string
	// badTails describe complete records that fail their checksum where
	// a segment's part of the log ends (damage, or a torn write that left
	// garbage): the log ends before them, their bytes stay in the segment,
	// and fsck reports them.
	badTails []string
	// attempts is the attempt chosen for each replayed segment;
	// discardObjects are the attempts that lost, to remove before writing.
	attempts       map[uint64]int
	discardObjects []string
	allAttempts    map[uint64][]int // every segment object, by seq
	segments       []uint64         // every segment object, oldest first
	records        int              // records replayed
	replayedBytes  int64            // log bytes replayed
	skipped        []string         // damaged checkpoints passed over
}

// listSegments returns the seqs of vol's segment objects in order.
func listSegments(st objstore.Store, vol string) ([]uint64, error) {
	seqs, _, err := segmentAttempts(st, vol)
	return seqs, err
}

// segmentAttempts lists vol's segment objects: the seqs in order and, for
// each, the attempt numbers present (attempt 0 is "<seq>", k is "<seq>.k").
func segmentAttempts(st objstore.Store, vol string) ([]uint64, map[uint64][]int, error) {
	names, err := st.List(segDir(vol))
	if err != nil {
		return nil, nil, err
	}
	attempts := make(map[uint64][]int)
	var seqs []uint64
	for _, n := range names {
		hex, att, hasAtt := strings.Cut(n, ".")
		seq, err := strconv.ParseUint(hex, 16, 64)
		if err != nil || len(hex) != 16 || seq == 0 {
			continue
		}
		a := 0
		if hasAtt {
			if a, err = strconv.Atoi(att); err != nil || a <= 0 {
				continue
			}
		}
		if _, seen := attempts[seq]; !seen {
			seqs = append(seqs, seq)
		}
		attempts[seq] = append(attempts[seq], a)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, attempts, nil
}

// readBestAttempt reads segment seq. When a failed object was written again
// there are several attempts, all prefixes of the same bytes; the one with
// the most valid records wins, the others go to r.discardObjects.
func (r *replayed) readBestAttempt(st objstore.Store, vm volMeta, seq uint64, attempts []int) ([]byte, error) {
	if len(attempts) == 1 {
		r.attempts[seq] = attempts[0]
		return readWholeSegment(st, vm.name, vm.sb, seq, attempts[0])
	}
	var best []byte
	bestEnd, bestAtt := -1, 0
	var firstErr error
	for _, a := range attempts {
		buf, err := readWholeSegment(st, vm.name, vm.sb, seq, a)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		sc := segment.NewScanner(buf, segment.SegmentHeaderLen, seq)
		for sc.Next() {
		}
		if sc.Offset() > bestEnd {
			best, bestEnd, bestAtt = buf, sc.Offset(), a
		}
	}
	if best == nil {
		return nil, firstErr
	}
	for _, a := range attempts {
		if a != bestAtt {
			r.discardObjects = append(r.discardObjects, segObjName(vm.name, seq, a))
		}
	}
	r.attempts[seq] = bestAtt
	return best, nil
}

// replay rebuilds the block map: from the newest valid checkpoint when
// useCkpt, else from the start of the log. visit, when not nil, sees every
// replayed record.
//
// Where the log ends: segments become durable in order only at a flush, so a
// crash may leave a segment shorter than the next one's header says (or
// without a valid header) while later segments exist. Such a truncated
// segment ends the log: no flush covered anything after it, so later
// segments hold only unacknowledged data (r.cut) unless the store was
// damaged, and the next writer moves them to VOL/lost+found/. Bad bytes in a segment that is not truncated are corruption.
func replay(st objstore.Store, vm volMeta, useCkpt bool, log *slog.Logger,
	visit func(seq uint64, off int, h segment.Header)) (replayed, error) {
	return replayImpl(st, vm, useCkpt, nil, log, visit)
}

// replayAt rebuilds the map from the checkpoint at pos only (fsck checks
// that every checkpoint kept recovers the volume).
func replayAt(st objstore.Store, vm volMeta, pos segment.Pos, log *slog.Logger) (replayed, error) {
	return replayImpl(st, vm, true, &pos, log, nil)
}

func replayImpl(st objstore.Store, vm volMeta, useCkpt bool, only *segment.Pos, log *slog.Logger,
	visit func(seq uint64, off int, h segment.Header)) (replayed, error) {
	vol, sb := vm.name, vm.sb
	r := replayed{mapState: mapState{m: blockmap.New(), snaps: newSnapTable(), books: newBooks(vm.lin.Branch)},
		attempts: make(map[uint64]int), ckptSnaps: map[snapshot.ObjectID]bool{}}
	if useCkpt {
		if err := r.loadCheckpoint(st, vm, only, log); err != nil {
			return r, err
		}
	}
	if r.ckpt == (segment.Pos{}) && vm.lin.Source() != "" {
		// A clone starts as its source snapshot's map.
		src := vm.lin.Source()
		m, err := loadLatestSnapMap(st, src, vm.lin.SourceUID, vm.lin.SourceSnap)
		if err != nil {
			return r, fmt.Errorf("lfs: clone %s: load source snapshot of %s: %w", vol, src, err)
		}
		r.m = m
		r.m.Punch(sb.size, maxVolumeSize-sb.size)
	}
	segs, attempts, err := segmentAttempts(st, vol)
	if err != nil {
		return r, err
	}
	r.segments, r.allAttempts = segs, attempts
	// Segments before the checkpoint were made durable by a flush after any
	// rewrite, so their newest attempt is the one; replay decides for the rest.
	for seq, as := range attempts {
		r.attempts[seq] = slices.Max(as)
	}
	i := 0
	for i < len(segs) && segs[i] < r.ckpt.Seq {
		i++
	}
	if r.ckpt.Seq > 0 && (i == len(segs) || segs[i] != r.ckpt.Seq) {
		return r, corruptf(ckptName(vol, r.ckpt), 16, "checkpoint names segment %d, which is missing", r.ckpt.Seq)
	}
	if r.ckpt.Seq == 0 && len(segs) > 0 && segs[0] != 1 {
		return r, corruptf(segName(vol, segs[0]), 0, "the log starts at segment %d, segment 1 is missing", segs[0])
	}
	r.end = r.ckpt
	// cut ends the log before segs[j]: it and every later segment are discarded.
	cut := func(j int, why string) {
		log.Warn("the log ends before this segment: a crash before it was durable, or damage; it and later ones are set aside in lost+found, not replayed",
			"segment", segName(vol, segs[j]), "reason", why, "set_aside", len(segs)-j)
		r.cut, r.cutWhy = append(r.cut, segs[j:]...), why
		segs = segs[:j]
	}
	var buf []byte
	if i < len(segs) {
		if a := attempts[segs[i]]; segs[i] == r.ckpt.Seq && len(a) == 1 {
			// Nothing before the checkpoint's position is replayed.
			r.attempts[segs[i]] = a[0]
			buf, err = readSegmentFrom(st, vm.name, vm.sb, segs[i], a[0], r.ckpt.Off)
		} else {
			buf, err = r.readBestAttempt(st, vm, segs[i], attempts[segs[i]])
		}
		if err != nil && isTruncation(err) && r.ckpt.Seq == 0 {
			cut(i, err.Error()) // the first segment of the log never became durable
		} else if err != nil {
			return r, err
		}
	}
	for ; i < len(segs); i++ {
		seq, name := segs[i], segName(vol, segs[i])
		start := segment.SegmentHeaderLen
		if seq == r.ckpt.Seq {
			start = int(r.ckpt.Off)
		}
		if start > len(buf) {
			return r, corruptf(name, int64(len(buf)), "checkpoint position %d is beyond the segment's %d bytes", start, len(buf))
		}
		limit := len(buf)
		var next []byte
		if i+1 < len(segs) {
			next, err = r.readBestAttempt(st, vm, segs[i+1], attempts[segs[i+1]])
			if err != nil && isTruncation(err) {
				cut(i+1, err.Error())
				next = nil
			} else if err != nil {
				return r, err
			}
		}
		if next != nil {
			sh, _ := segment.DecodeSegmentHeader(next, segs[i+1]) // verified by readSegment
			if sh.PrevSeq != seq {
				return r, corruptf(segName(vol, segs[i+1]), 0, "segment follows segment %d, but the log has %d before it", sh.PrevSeq, seq)
			}
			if int(sh.PrevEnd) > len(buf) {
				cut(i+1, fmt.Sprintf("segment %s holds %d bytes, the next one continues after byte %d", name, len(buf), sh.PrevEnd))
				next = nil
			} else {
				limit = int(sh.PrevEnd)
				// Bytes after where the next segment says this one ended
				// are a crash's torn tail, or damage the log was cut at.
				if bad := damagedTail(name, seq, buf, limit); bad != "" {
					r.badTails = append(r.badTails, bad)
				}
			}
		}
		last := next == nil
		if limit < start {
			return r, corruptf(name, int64(limit), "the next segment continues the log at %d, before position %d", limit, start)
		}
		sc := segment.NewScanner(buf[:limit], start, seq)
		for sc.Next() {
			if err := r.apply(st, vm, seq, sc.Offset(), sc.Header(), sc.Payload()); err != nil {
				return r, corruptf(name, int64(sc.Offset()), "%v", err)
			}
			if visit != nil {
				visit(seq, sc.Offset(), sc.Header())
			}
			r.records++
		}
		end := sc.Offset()
		if sc.Err() != nil {
			if !last || segment.ValidRecordAfter(buf, end, seq) || errors.Is(sc.Err(), segment.ErrNewerVersion) {
				return r, corruptf(name, int64(end), "%v", sc.Err())
			}
			if bad := damagedTail(name, seq, buf, end); bad != "" {
				r.badTails = append(r.badTails, bad)
				log.Warn("log ends before a damaged record; its bytes stay in the segment, fsck reports them",
					"segment", name, "offset", end, "bytes", len(buf)-end, "err", sc.Err())
			} else {
				log.Warn("log ends in a torn record (crash during a write); unflushed data after it is not replayed",
					"segment", name, "offset", end, "dropped_bytes", len(buf)-end)
			}
		}
		r.replayedBytes += int64(end - start)
		r.end = segment.Pos{Seq: seq, Off: int64(end)}
		buf = next
	}
	return r, nil
}

func isTruncation(err error) bool { return errors.Is(err, errTruncated) }

// loadCheckpoint loads the newest valid checkpoint into r (with only, that
// checkpoint or an error).
func (r *replayed) loadCheckpoint(st objstore.Store, vm volMeta, only *segment.Pos, log *slog.Logger) error {
	vol, sb := vm.name, vm.sb
	positions, err := listCheckpoints(st, vol)
	if err != nil {
		return err
	}
	if only != nil {
		positions = []segment.Pos{*only}
	}
	for _, p := range positions {
		name := ckptName(vol, p)
		b, err := readObject(st, name)
		if err != nil {
			return err
		}
		c, err := decodeCheckpoint(name, sb.uid, b)
		if err == nil && c.pos != p {
			err = corruptf(name, 16, "checkpoint position %v differs from its name", c.pos)
		}
		if errors.Is(err, ErrNewerFormat) {
			return err
		}
		if err != nil && only != nil {
			return err
		}
		if err != nil {
			log.Warn("skipping damaged checkpoint", "checkpoint", name, "err", err)
			r.skipped = append(r.skipped, err.Error())
			continue
		}
		r.m, r.ckpt, r.snaps, r.ckptSnaps = c.m, c.pos, loadedSnapTable(c.snaps), c.snaps.Objects()
		r.m.Punch(sb.size, maxVolumeSize-sb.size) // a shrink since then
		r.books = loadedBooks(vm.lin.Branch, c, c.snaps)
		return nil
	}
	return nil
}

// readWholeSegment reads a whole segment object and verifies its header.
func readWholeSegment(st objstore.Store, vol string, sb superblock, seq uint64, attempt int) ([]byte, error) {
	name := segObjName(vol, seq, attempt)
	buf, err := readObject(st, name)
	if err != nil {
		return nil, err
	}
	if err := checkSegmentHeader(name, buf, sb, seq); err != nil {
		return nil, err
	}
	return buf, nil
}

// checkSegmentHeader verifies the header of segment object name, whose
// bytes are buf.
func checkSegmentHeader(name string, buf []byte, sb superblock, seq uint64) error {
	sh, err := segment.DecodeSegmentHeader(buf, seq)
	if err != nil && !errors.Is(err, segment.ErrNewerVersion) && !segment.ValidRecordAfter(buf, -1, seq) {
		return fmt.Errorf("%s: %w (%v)", name, errTruncated, err)
	}
	if errors.Is(err, segment.ErrNewerVersion) {
		return fmt.Errorf("%w: %s: %v", ErrNewerFormat, name, err)
	}
	if err != nil {
		return corruptf(name, 0, "segment header: %v", err)
	}
	if sh.VolumeUID != sb.uid {
		return corruptf(name, 0, "segment belongs to another volume (uid %x, want %x)", sh.VolumeUID, sb.uid)
	}
	if sh.Seq != seq {
		return corruptf(name, 0, "segment header says seq %d", sh.Seq)
	}
	return nil
}

// apply replays one record, clipped to the volume.
func (r *replayed) apply(st objstore.Store, vm volMeta, seq uint64, off int, h segment.Header, payload []byte) error {
	addr, length := int64(h.Addr), int64(h.LogicalLen)
	switch h.Type {
	case segment.TypeHole:
		r.m.PunchFn(addr, length, r.books.removed)
	case segment.TypeCopy:
		// Reachable only through maps written after it (segment.TypeCopy).
	case segment.TypeData:
		if addr >= vm.sb.size {
			return nil
		}
		e := blockmap.Extent{Off: addr, Length: h.LogicalLen, Seq: uint32(seq), Branch: vm.lin.Branch,
			PayOff: uint32(off + segment.HeaderSize), PayLen: h.PayloadLen, Flags: blockmap.FlagsOf(h)}
		if e.End() > vm.sb.size {
			e.Length = uint32(vm.sb.size - addr)
		}
		r.m.SetMerging(e, r.books.removed)
		r.books.added(e)
	case segment.TypeMeta:
		op, err := snapshot.DecodeOp(payload)
		if err != nil {
			return err
		}
		return r.applyMeta(st, vm, op, segment.Pos{Seq: seq, Off: int64(off)})
	}
	return nil
}

// applyMeta replays a snapshot operation: the rules are the live path's
// (mapState.applySnapshotOp); a rollback loads its target map first.
func (r *replayed) applyMeta(st objstore.Store, vm volMeta, op snapshot.Op, pos segment.Pos) error {
	var target *blockmap.Map
	if s, ok := r.snaps.byID(op.ID); ok && op.Kind == snapshot.Rollback {
		if target = s.m; target == nil {
			var err error
			if target, err = loadSnapMap(st, vm.name, vm.sb.uid, s.ID, s.Gen); err != nil {
				return fmt.Errorf("rollback to snapshot %s: %w", s.Name, err)
			}
		}
	}
	if err := r.applySnapshotOp(op, pos, target, vm.sb.size); err != nil {
		return fmt.Errorf("snapshot %s record (id %d, parent %d, name %q) does not fit the snapshot table: %w", op.Kind, op.ID, op.Parent, op.Name, err)
	}
	return nil
}

// loadSnapMap reads generation gen of the map of snapshot id of volume vol
// (whose uid is uid).
func loadSnapMap(st objstore.Store, vol string, uid uint64, id snapshot.ID, gen snapshot.Gen) (*blockmap.Map, error) {
	return loadMapObject(st, snapshot.ObjectName(vol, id, gen), uid)
}

// loadLatestSnapMap reads the newest generation of a snapshot's map.
func loadLatestSnapMap(st objstore.Store, vol string, uid uint64, id snapshot.ID) (*blockmap.Map, error) {
	name, err := latestSnapObject(st, vol, id)
	if err != nil {
		return nil, err
	}
	return loadMapObject(st, name, uid)
}

func loadMapObject(st objstore.Store, name string, uid uint64) (*blockmap.Map, error) {
	b, err := readObject(st, name)
	if err != nil {
		return nil, err
	}
	c, err := decodeCheckpoint(name, uid, b)
	if err != nil {
		return nil, err
	}
	return c.m, nil
}

// damagedTail describes the bytes of segment name (seq) after offset end, where
// its part of the log ends, when they are not what a crash leaves (a record
// cut short, or zeros) but a complete record that fails its checksum, or
// a valid one: damage the log was cut at. "" when they are a crash's.
func damagedTail(name string, seq uint64, buf []byte, end int) string {
	tail := buf[end:]
	if len(tail) == 0 || isZero(tail) {
		return ""
	}
	if _, _, err := segment.Decode(tail, seq); errors.Is(err, segment.ErrTorn) {
		return ""
	}
	if segment.StaleRecordFrom(tail, 0, seq) {
		return "" // what a recycled file held before: docs/format.md
	}
	return fmt.Sprintf("segment %s: the log ends at offset %d before a complete record that fails its checksum or follows a gap (%d bytes to the end of the segment, kept there): damage, or a torn write that left garbage; whatever they held is not part of the volume",
		name, end, len(tail))
}
