package lfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"sort"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
)

// FsckReport is what Fsck found.
type FsckReport struct {
	Segments     int   `json:"segments"`
	Records      int   `json:"records"`
	Extents      int   `json:"extents"`
	MappedBytes  int64 `json:"mapped_bytes"`
	BytesChecked int64 `json:"bytes_checked"`
	// LiveBytes is the recount of the space books; BooksExact tells
	// whether the volume's own books claimed to be exact (then they were
	// compared with the recount).
	LiveBytes  int64 `json:"live_bytes"`
	BooksExact bool  `json:"books_exact"`
	// SetAside are the objects recovery moved to VOL/lost+found/ because
	// the log ended before them (listed in Problems too).
	SetAside []SetAsideObject `json:"set_aside,omitempty"`
	Problems []string         `json:"problems"`
	// SuperblockDamaged says that the superblock is missing or damaged
	// while the volume's log remains (the only problem then listed):
	// RepairSuperblock rebuilds it.
	SuperblockDamaged bool `json:"superblock_damaged,omitempty"`
}

// SetAsideObject is an object in a volume's lost+found.
type SetAsideObject struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// OK reports whether no problem was found.
func (r FsckReport) OK() bool { return len(r.Problems) == 0 }

// Fsck checks a volume without changing it: every record checksum in every
// segment, the log chain, that recovery from every checkpoint kept works
// and yields the same content as the whole log (or, once the cleaner has
// deleted the log's start, as the newest checkpoint), that every extent of
// the live map and of every snapshot's map points at a record that holds
// it, and the space books against a recount. Damage is listed in the
// report; the error is for failures to check at all.
func Fsck(st objstore.Store, name string, progress func(done, total int64)) (FsckReport, error) {
	var rep FsckReport
	if err := ValidateName(name); err != nil {
		return rep, err
	}
	sb, err := readSuperblock(st, name)
	if IsCorruption(err) {
		rep.Problems = append(rep.Problems, err.Error())
		rep.SuperblockDamaged = errors.Is(err, ErrDamaged)
		return rep, nil
	}
	if err != nil {
		return rep, err
	}
	info, err := Stat(st, name)
	if err != nil {
		return rep, err
	}
	lin, err := readLineage(st, name)
	if err != nil {
		if IsCorruption(err) {
			rep.Problems = append(rep.Problems, err.Error())
			return rep, nil
		}
		return rep, err
	}
	vm := volMeta{name, sb, lin}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// While a server cleans the volume, it deletes nothing fsck may read.
	if lease, err := takeReadLease(st, name); err == nil {
		defer lease.release()
	}
	problem := func(err error) bool {
		if err == nil {
			return false
		}
		rep.Problems = append(rep.Problems, err.Error())
		return true
	}
	fatal := func(err error) bool { return err != nil && !IsCorruption(err) && !errors.Is(err, ErrNewerFormat) }

	fast, err := replay(st, vm, true, quiet, nil)
	if fatal(err) {
		return rep, err
	}
	if problem(err) {
		return rep, nil
	}
	rep.Problems = append(rep.Problems, fast.skipped...)
	attempts := newAttemptMap()
	for seq, a := range fast.attempts {
		attempts.set(seq, a)
	}
	// A volume-shaped reader of the store, for comparing maps by content.
	rv := &Volume{st: st, name: name, sb: sb, lin: lin, readers: newSegmentReaders(st, lin, attempts)}
	defer rv.readers.close()

	var done int64
	lastSeq := uint64(0)
	count := func(seq uint64, off int, h segment.Header) {
		done += int64(h.RecordLen())
		rep.Records++
		if progress != nil && seq != lastSeq {
			progress(done, info.BytesStored)
		}
		lastSeq = seq
	}
	segs := fast.segments
	rep.Segments = len(segs)
	if whole := len(segs) == 0 || segs[len(segs)-1] == uint64(len(segs)); whole {
		// The whole log is there (seqs 1..n): replay all of it.
		full, err := replay(st, vm, false, quiet, count)
		if fatal(err) {
			return rep, err
		}
		if problem(err) {
			return rep, nil
		}
		for _, bad := range full.badTails {
			if !slices.Contains(fast.badTails, bad) {
				fast.badTails = append(fast.badTails, bad)
			}
		}
		if d := rv.diffContent(full.m, fast.m); d != "" {
			rep.Problems = append(rep.Problems, "the map from checkpoint "+fast.ckpt.String()+" plus the log differs from the map of the whole log: "+d)
		}
	} else {
		// The cleaner deleted the log's start: every checkpoint kept must
		// recover the same content, and the segments before the oldest
		// must hold only intact records.
		positions, err := listCheckpoints(st, name)
		if err != nil {
			return rep, err
		}
		for _, p := range positions {
			r, err := replayAt(st, vm, p, quiet)
			if fatal(err) {
				return rep, err
			}
			if err != nil {
				rep.Problems = append(rep.Problems, "recovery from checkpoint "+p.String()+" fails: "+err.Error())
				continue
			}
			if d := rv.diffContent(r.m, fast.m); d != "" {
				rep.Problems = append(rep.Problems, "checkpoint "+p.String()+" recovers other content than the newest: "+d)
			}
		}
		oldest := fast.ckpt.Seq
		if len(positions) > 0 {
			oldest = positions[len(positions)-1].Seq
		}
		for _, seq := range segs {
			if seq >= oldest {
				break
			}
			problem(scanOldSegment(st, vm, seq, fast.allAttempts[seq], count))
		}
		if _, err := replay(st, vm, true, quiet, count); fatal(err) {
			return rep, err
		}
	}
	rep.BytesChecked = done
	if err := rep.checkLostFound(st, vm, fast); err != nil {
		return rep, err
	}
	rep.Extents = fast.m.Len()
	rep.MappedBytes = fast.m.MappedBytes()
	rep.Problems = append(rep.Problems, fast.m.Problems(sb.size)...)
	rep.Problems = append(rep.Problems, verifyExtents(rv.readers, fast.m, "")...)

	// Every snapshot's map, and the books.
	snapMaps := make([]*blockmap.Map, 0, fast.snaps.tree.Len())
	for _, s := range fast.snaps.list() {
		m := s.m
		if m == nil {
			if m, err = loadSnapMap(st, name, sb.uid, s.ID, s.Gen); err != nil {
				if fatal(err) {
					return rep, err
				}
				problem(fmt.Errorf("snapshot %s: %w", s.Name, err))
				continue
			}
		}
		snapMaps = append(snapMaps, m)
		rep.Problems = append(rep.Problems, verifyExtents(rv.readers, m, "snapshot "+s.Name+": ")...)
	}
	counted := countLive(lin.Branch, fast.m, snapMaps)
	for _, n := range counted {
		rep.LiveBytes += n
	}
	rep.BooksExact = fast.books.exact
	if fast.books.exact {
		if d := diffCounts(fast.books.live, counted); d != "" {
			rep.Problems = append(rep.Problems, "space books differ from a recount: "+d)
		}
	}
	if progress != nil {
		progress(info.BytesStored, info.BytesStored)
	}
	return rep, nil
}

// scanOldSegment checks every record of a segment before the oldest
// checkpoint: the cleaner may have left it, and recovery does not read it.
func scanOldSegment(st objstore.Store, vm volMeta, seq uint64, attempts []int, visit func(uint64, int, segment.Header)) error {
	var r replayed
	r.attempts = make(map[uint64]int)
	buf, err := r.readBestAttempt(st, vm, seq, attempts)
	if err != nil {
		return err
	}
	sc := segment.NewScanner(buf, segment.SegmentHeaderLen, seq)
	for sc.Next() {
		visit(seq, sc.Offset(), sc.Header())
	}
	// A torn tail is what a crash leaves in the segment it was writing;
	// valid records after bad bytes are not.
	if sc.Err() != nil && (segment.ValidRecordAfter(buf, sc.Offset(), seq) || errors.Is(sc.Err(), segment.ErrNewerVersion)) {
		return corruptf(segName(vm.name, seq), int64(sc.Offset()), "%v", sc.Err())
	}
	return nil
}

// diffContent describes the first difference in content between two maps
// of the volume, "" when they read the same. Extents that differ only in
// where their bytes are (the cleaner moved them) are compared by reading.
func (v *Volume) diffContent(a, b *blockmap.Map) string {
	var suspect []blockmap.Span
	collect := func(x, y *blockmap.Map) {
		x.Ascend(func(e blockmap.Extent) bool {
			for _, r := range appendNotIn(nil, e, y) {
				suspect = append(suspect, blockmap.Span{Lo: r.base + int64(r.lo), Hi: r.base + int64(r.hi)})
			}
			return true
		})
	}
	collect(a, b)
	collect(b, a)
	sort.Slice(suspect, func(i, j int) bool { return suspect[i].Lo < suspect[j].Lo })
	pa, pb := make([]byte, 64<<10), make([]byte, 64<<10)
	for _, s := range suspect {
		for off := s.Lo; off < s.Hi; off += int64(len(pa)) {
			n := min(int64(len(pa)), s.Hi-off)
			errA, errB := v.readMap(a, nil, pa[:n], off), v.readMap(b, nil, pb[:n], off)
			if errA != nil || errB != nil {
				return fmt.Sprintf("reading %d bytes at %d: %v / %v", n, off, errA, errB)
			}
			if !bytes.Equal(pa[:n], pb[:n]) {
				return fmt.Sprintf("the bytes at volume offset %d..%d differ", off, off+n)
			}
		}
	}
	return ""
}

// verifyExtents checks that each extent points at a data or copy record
// that covers it; what prefixes each problem.
func verifyExtents(readers *segmentReaders, m *blockmap.Map, what string) []string {
	var probs []string
	hdr := make([]byte, segment.HeaderSize)
	m.Ascend(func(run blockmap.Extent) bool {
		// Each record of a run extent is checked: the run's bytes must be
		// consecutive records of the same layout.
		run.Records(func(e blockmap.Extent) bool {
			recOff := int64(e.PayOff) - segment.HeaderSize
			err := readers.readAt(keyOf(e), hdr, recOff)
			var h segment.Header
			if err == nil {
				h, err = segment.DecodeHeader(hdr)
			}
			if err == nil && (h.Type != e.RecordType() || int64(h.Addr)+int64(e.Skip) != e.Off ||
				e.Skip+e.Length > h.LogicalLen || h.PayloadLen != e.PayLen || h.Flags != e.RecordFlags() || h.HasBlockSums() != e.BlockSums()) {
				err = fmt.Errorf("record %+v does not cover the extent", h)
			}
			if err != nil {
				probs = append(probs, fmt.Sprintf("%sextent at volume offset %d: %s offset %d: %v", what, e.Off, readers.name(keyOf(e)), recOff, err))
				return false
			}
			return true
		})
		return len(probs) < 20
	})
	return probs
}

// MappedBytes returns the bytes of the volume that hold data (not holes).
func (v *Volume) MappedBytes() int64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.mu.m.MappedBytes()
}

// checkLostFound reports what recovery set aside or would set aside, and
// a damaged record the log ends before: data a crash's unflushed writes
// or damage cut off. An operator inspects it and clears it
// (ClearLostFound).
func (rep *FsckReport) checkLostFound(st objstore.Store, vm volMeta, r replayed) error {
	if len(r.cut) > 0 {
		var n int64
		kept := false
		for _, seq := range r.cut {
			for _, a := range r.allAttempts[seq] {
				size, err := objectSize(st, segObjName(vm.name, seq, a))
				if err != nil && !errors.Is(err, objstore.ErrNotExist) {
					return err
				}
				n += size
				// What holds no record but its header is removed, not set
				// aside (repairTail): nothing of it was ever durable.
				kept = kept || size > segment.SegmentHeaderLen
			}
		}
		if kept {
			rep.Problems = append(rep.Problems, fmt.Sprintf("the log ends before segment %s (%s): it and %d later segments (%d bytes) hold writes no flush covered before a crash, or data cut off by damage; the next open moves them to %s/",
				segName(vm.name, r.cut[0]), r.cutWhy, len(r.cut)-1, n, lostFoundDir(vm.name)))
		}
	}
	rep.Problems = append(rep.Problems, r.badTails...)
	names, err := st.List(lostFoundDir(vm.name))
	if err != nil {
		return err
	}
	for _, n := range names {
		name := path.Join(lostFoundDir(vm.name), n)
		size, err := objectSize(st, name)
		if err != nil && !errors.Is(err, objstore.ErrNotExist) {
			return err
		}
		rep.SetAside = append(rep.SetAside, SetAsideObject{Name: name, Bytes: size})
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s (%d bytes) was set aside by recovery: the log ended before it (a crash's unflushed writes, or damage); inspect it, then remove it with `hlfs fsck --clear-lost-found %s`",
			name, size, vm.name))
	}
	return nil
}

// ClearLostFound removes what recovery set aside in vol's lost+found and
// returns the objects and bytes removed. The operator decides: recovery
// never deletes them itself.
func ClearLostFound(st objstore.Store, vol string) (objects int, bytes int64, err error) {
	if err := ValidateName(vol); err != nil {
		return 0, 0, err
	}
	names, err := st.List(lostFoundDir(vol))
	if err != nil {
		return 0, 0, err
	}
	for _, n := range names {
		name := path.Join(lostFoundDir(vol), n)
		size, err := objectSize(st, name)
		if err != nil && !errors.Is(err, objstore.ErrNotExist) {
			return objects, bytes, err
		}
		if err := st.Remove(name); err != nil && !errors.Is(err, objstore.ErrNotExist) {
			return objects, bytes, err
		}
		objects, bytes = objects+1, bytes+size
	}
	return objects, bytes, nil
}
