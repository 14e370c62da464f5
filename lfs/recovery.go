package lfs

import (
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strconv"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
)

// replayed is the state rebuilt from the store.
type replayed struct {
	m          *extentMap
	ckpt       logPos   // checkpoint the replay started from ((0,0): none)
	end        logPos   // after the last valid record
	tornLast   uint64   // seq of a last segment without a valid header (0: none)
	segments   []uint64 // every segment object, oldest first
	records    int      // records replayed
	replayed   int64    // log bytes replayed
	skipped    []string // damaged checkpoints passed over
	lastIsTorn bool     // the last segment ended in a torn record
}

// listSegments returns the seqs of vol's segment objects in order.
func listSegments(st objstore.Store, vol string) ([]uint64, error) {
	names, err := st.List(segDir(vol))
	if err != nil {
		return nil, err
	}
	seqs := make([]uint64, 0, len(names))
	for _, n := range names {
		seq, err := strconv.ParseUint(n, 16, 64)
		if err != nil || len(n) != 16 || seq == 0 {
			continue
		}
		seqs = append(seqs, seq)
	}
	return seqs, nil // List is sorted and names are fixed-width hex
}

// replay rebuilds the block map: from the newest valid checkpoint when
// useCkpt, else from the start of the log. visit, when not nil, sees every
// replayed record.
func replay(st objstore.Store, vol string, sb superblock, useCkpt bool, log *slog.Logger,
	visit func(seq uint64, off int, h segment.Header)) (replayed, error) {
	r := replayed{m: newExtentMap()}
	if useCkpt {
		if err := r.loadCheckpoint(st, vol, sb, log); err != nil {
			return r, err
		}
	}
	segs, err := listSegments(st, vol)
	if err != nil {
		return r, err
	}
	r.segments = segs
	// A last segment without a valid header holds nothing (its writer died
	// before the header was durable); it is left out and removed by the next writer.
	if n := len(segs); n > 0 {
		buf, err := readObject(st, segName(vol, segs[n-1]))
		if err != nil {
			return r, err
		}
		if _, herr := segment.DecodeSegmentHeader(buf); herr != nil && !segment.ValidRecordAfter(buf, -1) {
			r.tornLast = segs[n-1]
			segs = segs[:n-1]
		}
	}
	i := 0
	for i < len(segs) && segs[i] < r.ckpt.seq {
		i++
	}
	if r.ckpt.seq > 0 && (i == len(segs) || segs[i] != r.ckpt.seq) {
		return r, corruptf(ckptName(vol, r.ckpt), 16, "checkpoint names segment %d, which is missing", r.ckpt.seq)
	}
	if r.ckpt.seq == 0 && len(segs) > 0 && segs[0] != 1 {
		return r, corruptf(segName(vol, segs[0]), 0, "the log starts at segment %d, segment 1 is missing", segs[0])
	}
	r.end = r.ckpt
	var buf []byte
	if i < len(segs) {
		if buf, err = readSegment(st, vol, sb, segs[i]); err != nil {
			return r, err
		}
	}
	for ; i < len(segs); i++ {
		seq, name := segs[i], segName(vol, segs[i])
		start := segment.SegmentHeaderLen
		if seq == r.ckpt.seq {
			start = int(r.ckpt.off)
		}
		var next []byte
		limit, last := len(buf), i == len(segs)-1
		if !last {
			if next, err = readSegment(st, vol, sb, segs[i+1]); err != nil {
				return r, err
			}
			sh, _ := segment.DecodeSegmentHeader(next) // verified by readSegment
			if sh.PrevSeq != seq {
				return r, corruptf(segName(vol, segs[i+1]), 0, "segment follows segment %d, but the log has %d before it", sh.PrevSeq, seq)
			}
			limit = int(sh.PrevEnd)
			if limit > len(buf) || limit < start {
				return r, corruptf(name, int64(len(buf)), "segment holds %d bytes, the next segment says the log continues after byte %d", len(buf), limit)
			}
		}
		if start > len(buf) {
			return r, corruptf(name, int64(len(buf)), "checkpoint position %d is beyond the segment's %d bytes", start, len(buf))
		}
		sc := segment.NewScanner(buf[:limit], start)
		for sc.Next() {
			r.apply(sb, seq, sc.Offset(), sc.Header())
			if visit != nil {
				visit(seq, sc.Offset(), sc.Header())
			}
			r.records++
		}
		end := sc.Offset()
		if sc.Err() != nil {
			if !last || segment.ValidRecordAfter(buf, sc.Offset()) || !(errors.Is(sc.Err(), segment.ErrTorn) || errors.Is(sc.Err(), segment.ErrCorrupt)) {
				return r, corruptf(name, int64(sc.Offset()), "%v", sc.Err())
			}
			r.lastIsTorn = true
			log.Warn("log ends in a torn record (crash during a write); unflushed data after it is discarded",
				"segment", name, "offset", sc.Offset(), "dropped_bytes", len(buf)-sc.Offset())
		}
		r.replayed += int64(end - start)
		r.end = logPos{seq, int64(end)}
		buf = next
	}
	return r, nil
}

// loadCheckpoint loads the newest valid checkpoint into r.
func (r *replayed) loadCheckpoint(st objstore.Store, vol string, sb superblock, log *slog.Logger) error {
	positions, err := listCheckpoints(st, vol)
	if err != nil {
		return err
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
		if err != nil {
			log.Warn("skipping damaged checkpoint", "checkpoint", name, "err", err)
			r.skipped = append(r.skipped, err.Error())
			continue
		}
		r.m, r.ckpt = c.m, c.pos
		r.m.punch(sb.size, maxVolumeSize-sb.size) // a shrink since then
		return nil
	}
	return nil
}

// readSegment reads a whole segment object and verifies its header.
func readSegment(st objstore.Store, vol string, sb superblock, seq uint64) ([]byte, error) {
	name := segName(vol, seq)
	buf, err := readObject(st, name)
	if err != nil {
		return nil, err
	}
	sh, err := segment.DecodeSegmentHeader(buf)
	if errors.Is(err, segment.ErrNewerVersion) {
		return nil, fmt.Errorf("%w: %s: %v", ErrNewerFormat, name, err)
	}
	if err != nil {
		return nil, corruptf(name, 0, "segment header: %v", err)
	}
	if sh.VolumeUID != sb.uid {
		return nil, corruptf(name, 0, "segment belongs to another volume (uid %x, want %x)", sh.VolumeUID, sb.uid)
	}
	if sh.Seq != seq {
		return nil, corruptf(name, 0, "segment header says seq %d", sh.Seq)
	}
	return buf, nil
}

// apply replays one record into the map, clipped to the volume.
func (r *replayed) apply(sb superblock, seq uint64, off int, h segment.Header) {
	addr, length := int64(h.Addr), int64(h.LogicalLen)
	switch h.Type {
	case segment.TypeHole:
		r.m.punch(addr, length)
	case segment.TypeData:
		e := extent{off: addr, length: h.LogicalLen, seq: uint32(seq),
			payOff: uint32(off + segment.HeaderSize), payLen: h.PayloadLen, flags: h.Flags}
		if addr >= sb.size {
			r.m.punch(addr, length)
			return
		}
		if e.end() > sb.size {
			e.length = uint32(sb.size - addr)
		}
		r.m.set(e)
	}
}

func (p logPos) String() string { return path.Join(fmt.Sprintf("%d", p.seq), fmt.Sprintf("%d", p.off)) }
