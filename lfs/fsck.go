package lfs

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
)

// FsckReport is what Fsck found.
type FsckReport struct {
	Segments     int      `json:"segments"`
	Records      int      `json:"records"`
	Extents      int      `json:"extents"`
	MappedBytes  int64    `json:"mapped_bytes"`
	BytesChecked int64    `json:"bytes_checked"`
	Problems     []string `json:"problems"`
}

// OK reports whether no problem was found.
func (r FsckReport) OK() bool { return len(r.Problems) == 0 }

// Fsck checks a volume without changing it: every record checksum in every
// segment, the log chain, every checkpoint, and that the map recovered from
// the newest checkpoint equals the map rebuilt from the whole log. Damage is
// listed in the report; the error is for failures to check at all.
func Fsck(st objstore.Store, name string, progress func(done, total int64)) (FsckReport, error) {
	var rep FsckReport
	if err := ValidateName(name); err != nil {
		return rep, err
	}
	sb, err := readSuperblock(st, name)
	if IsCorruption(err) {
		rep.Problems = append(rep.Problems, err.Error())
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
	var done int64
	lastSeq := uint64(0)
	full, err := replay(st, vm, false, quiet, func(seq uint64, off int, h segment.Header) {
		done += int64(h.RecordLen())
		if progress != nil && seq != lastSeq {
			progress(done, info.BytesStored)
		}
		lastSeq = seq
	})
	rep.BytesChecked = done
	rep.Segments = len(full.segments)
	rep.Records = full.records
	if err != nil {
		if !IsCorruption(err) && !errors.Is(err, ErrNewerFormat) {
			return rep, err
		}
		rep.Problems = append(rep.Problems, err.Error())
		return rep, nil
	}
	// A torn tail or a headerless last segment is the normal outcome of a
	// crash, not damage: the next open repairs it.
	rep.Extents = full.m.len()
	rep.MappedBytes = full.m.mappedBytes()
	rep.Problems = append(rep.Problems, checkMap(full.m, sb.size)...)

	fast, err := replay(st, vm, true, quiet, nil)
	if err != nil {
		rep.Problems = append(rep.Problems, "recovery from the newest checkpoint fails: "+err.Error())
	} else {
		rep.Problems = append(rep.Problems, fast.skipped...)
		if d := diffMaps(full.m, fast.m); d != "" {
			rep.Problems = append(rep.Problems, "the map from checkpoint "+fast.ckpt.String()+" plus the log differs from the map of the whole log: "+d)
		}
	}
	attempts := newAttemptMap()
	for seq, a := range full.attempts {
		attempts.set(seq, a)
	}
	rep.Problems = append(rep.Problems, verifyExtents(st, lin, attempts, full.m)...)
	if progress != nil {
		progress(info.BytesStored, info.BytesStored)
	}
	return rep, nil
}

// checkMap checks the map invariants: extents ordered, non-overlapping,
// non-empty and within the volume.
func checkMap(m *extentMap, size int64) []string {
	var probs []string
	prevEnd := int64(0)
	m.ascend(func(e extent) bool {
		if e.length == 0 || e.off < prevEnd || e.end() > size || e.skip+e.length > uint32(segment.MaxDataLen) {
			probs = append(probs, fmt.Sprintf("map invariant broken at extent %d+%d (previous ends at %d, size %d)", e.off, e.length, prevEnd, size))
			return len(probs) < 10
		}
		prevEnd = e.end()
		return true
	})
	return probs
}

// diffMaps describes the first difference between two maps, "" when equal.
func diffMaps(a, b *extentMap) string {
	if a.len() != b.len() {
		return fmt.Sprintf("%d extents vs %d", a.len(), b.len())
	}
	var as []extent
	a.ascend(func(e extent) bool { as = append(as, e); return true })
	i, diff := 0, ""
	b.ascend(func(e extent) bool {
		if as[i] != e {
			diff = fmt.Sprintf("extent %d: %+v vs %+v", i, as[i], e)
			return false
		}
		i++
		return true
	})
	return diff
}

// verifyExtents checks that each extent points at a data record that covers it.
func verifyExtents(st objstore.Store, lin lineage, attempts *attemptMap, m *extentMap) []string {
	var probs []string
	readers := newSegmentReaders(st, lin, attempts)
	defer readers.close()
	hdr := make([]byte, segment.HeaderSize)
	m.ascend(func(e extent) bool {
		recOff := int64(e.payOff) - segment.HeaderSize
		err := readers.readAt(e.key(), hdr, recOff)
		var h segment.Header
		if err == nil {
			h, err = segment.DecodeHeader(hdr)
		}
		if err == nil && (h.Type != e.recordType() || int64(h.Addr)+int64(e.skip) != e.off ||
			e.skip+e.length > h.LogicalLen || h.PayloadLen != e.payLen || h.Flags != e.recordFlags()) {
			err = fmt.Errorf("record %+v does not cover the extent", h)
		}
		if err != nil {
			probs = append(probs, fmt.Sprintf("extent at volume offset %d: %s offset %d: %v", e.off, readers.name(e.key()), recOff, err))
		}
		return len(probs) < 20
	})
	return probs
}

// Check verifies the invariants of an open volume's map; tests call it after
// every scenario.
func (v *Volume) Check() error {
	v.mu.RLock()
	probs := checkMap(v.mu.m, v.sb.size)
	v.mu.RUnlock()
	if len(probs) > 0 {
		return fmt.Errorf("%w: %v", ErrCorrupt, probs)
	}
	return nil
}

// MappedBytes returns the bytes of the volume that hold data (not holes).
func (v *Volume) MappedBytes() int64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.mu.m.mappedBytes()
}
