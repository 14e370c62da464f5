package lfs

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
)

// Scrub reads back and verifies every record that the live volume or any
// of its snapshots maps (in clones, records of the source's segments too),
// each once, in log order, and reports the damage with who reads it. It
// reads what a reader would: the store, or memory for what the store does
// not have yet.

// ScrubOptions tune a scrub.
type ScrubOptions struct {
	// Rate bounds the bytes read per second; 0 means no bound.
	Rate int64
	// Progress, when not nil, is told the bytes verified so far and the
	// bytes the scrub reads in all.
	Progress func(done, total int64)
	// stop, when closed, ends the scrub early (the background scrubber).
	stop <-chan struct{}
}

// ScrubReport is what a scrub found.
type ScrubReport struct {
	Records       int64 `json:"records"`
	BytesVerified int64 `json:"bytes_verified"`
	// Moved counts records the cleaner moved (and deleted) while the scrub
	// ran: their copies are verified by the next scrub.
	Moved   int64          `json:"moved,omitempty"`
	Damaged []DamagedRange `json:"damaged,omitempty"`
}

// OK reports whether no damage was found.
func (r ScrubReport) OK() bool { return len(r.Damaged) == 0 }

// DamagedRange is bytes of a store object that fail their checksum, and the
// volume ranges that read them: what to restore.
type DamagedRange struct {
	Object string `json:"object"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	Reason string `json:"reason"`
	// ReadBy are the volume ranges whose reads fail (EIO) because of it:
	// Name is "VOLUME" for the live volume, "VOLUME@SNAP" for a snapshot.
	ReadBy []DamagedRead `json:"read_by"`
}

// DamagedRead is a range of a volume or snapshot that reads damaged bytes.
type DamagedRead struct {
	Name   string `json:"name"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
}

// scrubRecord is one record some map names, and who reads what of it.
type scrubRecord struct {
	e     blockmap.Extent // one extent naming it: the record's location and flags
	reads []scrubRead
}

type scrubRead struct {
	name string
	e    blockmap.Extent
}

// A scrub reads runs of records of one segment at once, up to scrubReadMax
// bytes, skipping gaps of at most scrubGap bytes by reading them too.
const (
	scrubReadMax = 4 << 20
	scrubGap     = 64 << 10
)

// recordLen is the encoded size of the record e names.
func recordLen(e blockmap.Extent) int64 {
	n := int64(segment.HeaderSize) + int64(e.PayLen)
	if e.BlockSums() {
		n += int64(segment.BlockSumsLen(e.PayLen))
	}
	return n
}

// Scrub verifies every byte the live volume or any snapshot maps; see
// ScrubOptions. A read error other than damage stops it.
func (v *Volume) Scrub(opts ScrubOptions) (ScrubReport, error) {
	var rep ScrubReport
	if err := v.checkOpen(false); err != nil {
		return rep, err
	}
	recs, err := v.scrubRecords()
	if err != nil {
		return rep, err
	}
	var total int64
	for _, r := range recs {
		total += recordLen(r.e)
	}
	start, done := time.Now(), int64(0)
	for i := 0; i < len(recs) && !isClosed(opts.stop); {
		// A run of records of one segment, read at once: sequential reads
		// of up to scrubReadMax bytes, gaps of garbage included.
		j, lo := i+1, int64(recs[i].e.PayOff)-segment.HeaderSize
		hi := lo + recordLen(recs[i].e)
		for j < len(recs) && keyOf(recs[j].e) == keyOf(recs[i].e) {
			rlo := int64(recs[j].e.PayOff) - segment.HeaderSize
			rhi := rlo + recordLen(recs[j].e)
			if rlo-hi > scrubGap || rhi-lo > scrubReadMax {
				break
			}
			hi = max(hi, rhi)
			j++
		}
		buf := make([]byte, hi-lo)
		v.readGate.RLock() // the cleaner deletes no segment meanwhile
		err := v.readSegmentAt(keyOf(recs[i].e), buf, lo)
		v.readGate.RUnlock()
		var n int64
		for _, r := range recs[i:j] {
			off := int64(r.e.PayOff) - segment.HeaderSize - lo
			n += recordLen(r.e)
			switch {
			case errors.Is(err, objstore.ErrNotExist):
				rep.Moved++
			case err == nil:
				rep.Records++
				rep.BytesVerified += recordLen(r.e)
				rep.Damaged = append(rep.Damaged, v.verifyRecord(r, buf[off:off+recordLen(r.e)])...)
			}
		}
		if err != nil && !errors.Is(err, objstore.ErrNotExist) {
			return rep, err
		}
		i, done = j, done+n
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
		if opts.Rate > 0 {
			if want := time.Duration(float64(done) / float64(opts.Rate) * float64(time.Second)); want > time.Since(start) {
				select {
				case <-time.After(want - time.Since(start)):
				case <-opts.stop:
				}
			}
		}
	}
	return rep, nil
}

// scrubRecords lists the records the live map and every snapshot's map
// name, in log order, each with the ranges that read it.
func (v *Volume) scrubRecords() ([]*scrubRecord, error) {
	c := v.cut()
	snapMaps, err := v.loadSnapshotMaps(c.snaps)
	if err != nil {
		return nil, err
	}
	type key struct {
		branch      uint16
		seq, payOff uint32
	}
	byKey := make(map[key]*scrubRecord)
	add := func(name string, m *blockmap.Map) {
		m.Ascend(func(run blockmap.Extent) bool {
			run.Records(func(e blockmap.Extent) bool {
				k := key{e.Branch, e.Seq, e.PayOff}
				r := byKey[k]
				if r == nil {
					r = &scrubRecord{e: e}
					byKey[k] = r
				}
				r.reads = append(r.reads, scrubRead{name, e})
				return true
			})
			return true
		})
	}
	add(v.name, c.live)
	for _, s := range c.snaps.tree.Nodes() {
		if m := snapMaps[s.ID]; m != nil {
			add(v.name+"@"+s.Name, m)
		}
	}
	recs := make([]*scrubRecord, 0, len(byKey))
	for _, r := range byKey {
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b *scrubRecord) int {
		return cmp.Or(cmp.Compare(a.e.Branch, b.e.Branch), cmp.Compare(a.e.Seq, b.e.Seq), cmp.Compare(a.e.PayOff, b.e.PayOff))
	})
	return recs, nil
}

// verifyRecord checks one record read whole into buf and returns its
// damage: for an uncompressed record with block checksums, the blocks that
// fail, each with the reads that need it; else the whole record.
func (v *Volume) verifyRecord(r *scrubRecord, buf []byte) []DamagedRange {
	_, _, err := segment.Decode(buf, uint64(r.e.Seq))
	if err == nil {
		return nil
	}
	k := keyOf(r.e)
	name, recOff := v.readers.name(k), int64(r.e.PayOff)-segment.HeaderSize
	v.checksumErrors.Add(1)
	whole := DamagedRange{Object: name, Offset: recOff, Length: int64(len(buf)), Reason: err.Error()}
	for _, rd := range r.reads {
		whole.ReadBy = append(whole.ReadBy, DamagedRead{rd.name, rd.e.Off, int64(rd.e.Length)})
	}
	if !r.e.BlockSums() || r.e.Snappy() {
		return []DamagedRange{whole}
	}
	const cb = segment.ChecksumBlock
	payload, sums := buf[segment.HeaderSize:segment.HeaderSize+int(r.e.PayLen)], buf[segment.HeaderSize+int(r.e.PayLen):]
	var out []DamagedRange
	for b := int64(0); b*cb < int64(r.e.PayLen); b++ {
		lo, hi := b*cb, min((b+1)*cb, int64(r.e.PayLen))
		if segment.VerifyBlocks(payload[lo:hi], sums[4*b:4*b+4]) < 0 {
			continue
		}
		d := DamagedRange{Object: name, Offset: int64(r.e.PayOff) + lo, Length: hi - lo,
			Reason: fmt.Sprintf("checksum mismatch in payload block %d of the record at %d", b, recOff)}
		for _, rd := range r.reads {
			// The part of this read that lies in the block: data byte i
			// of the record is at volume offset base+i.
			s, e := max(lo, int64(rd.e.Skip)), min(hi, int64(rd.e.Skip)+int64(rd.e.Length))
			if s < e {
				d.ReadBy = append(d.ReadBy, DamagedRead{rd.name, rd.e.Base() + s, e - s})
			}
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		// The blocks verify: the header or the checksums' own checksum is
		// hit. The data reads fine; replay and fsck see the damage.
		whole.Reason = "record header damaged (its data verifies): " + err.Error()
		whole.ReadBy = nil
		out = append(out, whole)
	}
	return out
}

// StartScrubber scrubs the volume every interval in the background at rate
// bytes per second (0: no bound) until Close, logging what it finds.
func (v *Volume) StartScrubber(interval time.Duration, rate int64) {
	if v.lw == nil {
		return // background loops run on volumes opened for writing
	}
	v.every(interval, nil, func() {
		rep, err := v.Scrub(ScrubOptions{Rate: rate, stop: v.stopBackground})
		switch {
		case err != nil:
			v.log.Error("scrub failed; retrying at the next interval", "err", err)
		case !rep.OK():
			for _, d := range rep.Damaged {
				v.log.Error("scrub: damaged data", "object", d.Object, "offset", d.Offset, "length", d.Length, "reason", d.Reason, "read_by", fmt.Sprint(d.ReadBy))
			}
			v.log.Error("scrub found damage", "damaged_ranges", len(rep.Damaged), "records", rep.Records, "bytes_verified", rep.BytesVerified)
		default:
			v.log.Info("scrub found no damage", "records", rep.Records, "bytes_verified", rep.BytesVerified)
		}
	})
}
