package lfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/segment"
)

func nowUTC() time.Time { return time.Now().UTC() }

// maxHoleRecord bounds the logical length of one hole record.
const maxHoleRecord = 1 << 30

// recordBatch is a write turned into encoded records, built without locks.
// A data record added by addRef keeps its payload where it is (refs[i]):
// buf holds its header and block checksums, and the log copies the three
// parts into the segment, so a client's payload is copied once, not twice.
type recordBatch struct {
	buf  []byte
	lens []int    // each record's whole encoded length
	refs [][]byte // each record's payload when not in buf, else nil
	hdrs []segment.Header
	// keep, when set, owns the payloads in refs: the log may keep them
	// by reference (WriteAtKeep).
	keep *keptPayload
}

var batchPool = sync.Pool{New: func() any { return new(recordBatch) }}

func (b *recordBatch) add(h segment.Header, payload []byte) {
	n := len(b.buf)
	b.buf = segment.Append(b.buf, h, payload)
	b.lens = append(b.lens, len(b.buf)-n)
	b.refs = append(b.refs, nil)
	h.PayloadLen, h.Version = uint32(len(payload)), segment.VersionOf(h.Type)
	b.hdrs = append(b.hdrs, h)
}

// addRef adds a data or copy record whose payload stays in payload, which
// must not change until the batch is committed.
func (b *recordBatch) addRef(h segment.Header, payload []byte) {
	n := len(b.buf)
	b.buf = segment.AppendSplit(b.buf, h, payload)
	b.lens = append(b.lens, len(b.buf)-n+len(payload))
	b.refs = append(b.refs, payload)
	h.PayloadLen, h.Version = uint32(len(payload)), segment.VersionOf(h.Type)
	b.hdrs = append(b.hdrs, h)
}

func (b *recordBatch) reset() {
	clear(b.refs) // no payload stays reachable from the pool
	b.buf, b.lens, b.refs, b.hdrs, b.keep = b.buf[:0], b.lens[:0], b.refs[:0], b.hdrs[:0], nil
}

// isZero reports whether b holds only zero bytes.
func isZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// addData appends data records for p at off: block-aligned runs of zero
// blocks become holes when detectZeros, the rest data records of at most
// segment.MaxDataLen bytes, compressed when that saves an eighth.
func (v *Volume) addData(b *recordBatch, p []byte, off int64, detectZeros bool) {
	bs := int64(v.sb.blockSize)
	for len(p) > 0 {
		// The run ends at a block boundary so zero detection sees whole blocks.
		n := int64(len(p))
		if n > segment.MaxDataLen {
			n = segment.MaxDataLen
		}
		if end := off + n; n < int64(len(p)) && end%bs != 0 && n > bs {
			n -= end % bs
		}
		chunk := p[:n]
		if detectZeros {
			// Split off the leading run of all-zero blocks (or partial blocks).
			z := int64(0)
			for z < n {
				step := bs - (off+z)%bs
				if step > n-z {
					step = n - z
				}
				if !isZero(chunk[z : z+step]) {
					break
				}
				z += step
			}
			if z > 0 {
				b.add(segment.Header{Type: segment.TypeHole, Addr: uint64(off), LogicalLen: uint32(z)}, nil)
				p, off = p[z:], off+z
				continue
			}
			// Cut the data run before the next all-zero block.
			d := int64(0)
			for d < n {
				step := bs - (off+d)%bs
				if step > n-d {
					step = n - d
				}
				if d > 0 && isZero(chunk[d:d+step]) {
					break
				}
				d += step
			}
			n, chunk = d, chunk[:d]
		}
		h := segment.Header{Type: segment.TypeData, Addr: uint64(off), LogicalLen: uint32(n)}
		payload := chunk
		if v.sb.compress {
			if c := snappy.Encode(nil, chunk); len(c) <= len(chunk)-len(chunk)/8 {
				h.Flags, payload = segment.FlagSnappy, c
			}
		}
		b.addRef(h, payload)
		p, off = p[n:], off+n
	}
}

// addHoles appends hole records covering [off, off+length).
func addHoles(b *recordBatch, off, length int64) {
	for length > 0 {
		n := length
		if n > maxHoleRecord {
			n = maxHoleRecord
		}
		b.add(segment.Header{Type: segment.TypeHole, Addr: uint64(off), LogicalLen: uint32(n)}, nil)
		off, length = off+n, length-n
	}
}

// commit appends the batch to the log and applies it to the map in log order.
func (v *Volume) commit(b *recordBatch) (segment.Pos, error) {
	end, err := v.lw.append(b.buf, b.lens, b.refs, b.keep, func(i int, p placed) {
		h := b.hdrs[i]
		v.mu.Lock()
		if h.Type == segment.TypeHole {
			v.mu.m.PunchFn(int64(h.Addr), int64(h.LogicalLen), v.mu.books.removed)
		} else {
			e := blockmap.Extent{Off: int64(h.Addr), Length: h.LogicalLen, Seq: uint32(p.seq),
				PayOff: uint32(p.recOff + segment.HeaderSize), PayLen: h.PayloadLen, Flags: blockmap.FlagsOf(h), Branch: v.lin.Branch}
			v.mu.m.SetMerging(e, v.mu.books.removed)
			v.mu.books.added(e)
		}
		v.mu.Unlock()
	})
	if err == nil {
		v.maybeCheckpoint()
	}
	return end, err
}

// WriteAt writes p at off. With fua, p is durable when WriteAt returns;
// otherwise after the next Flush. All-zero blocks are stored as holes.
func (v *Volume) WriteAt(p []byte, off int64, fua bool) error {
	return v.writeAt(p, off, fua, nil)
}

// WriteAtKeep is WriteAt, except that the volume may keep p by reference
// in its in-memory log instead of copying it, until the store has the
// segments holding it: p must not change until release runs. release runs
// at most once, maybe before WriteAtKeep returns, from the log writer's
// pusher with its lock held (it must not block or call into the volume); p
// held by segments still in memory when the volume closes is left to the
// garbage collector. The NBD server hands its request buffers over this
// way (nbdserver.PayloadKeeper), saving a copy of every byte written.
func (v *Volume) WriteAtKeep(p []byte, off int64, fua bool, release func()) error {
	k := newKeptPayload(release)
	defer k.drop()
	return v.writeAt(p, off, fua, k)
}

// writeAt is WriteAt; with keep, p belongs to keep (WriteAtKeep).
func (v *Volume) writeAt(p []byte, off int64, fua bool, keep *keptPayload) error {
	if err := v.checkOpen(true); err != nil {
		return err
	}
	if err := v.checkRange(off, int64(len(p))); err != nil {
		return err
	}
	b := batchPool.Get().(*recordBatch)
	defer func() { b.reset(); batchPool.Put(b) }()
	v.addData(b, p, off, true)
	if keep != nil && keepsMostOf(b, cap(p), v.sb.compress) {
		b.keep = keep
	}
	return v.commitAndMaybeFlush(b, fua)
}

// keepsMostOf reports whether the log may keep the batch's payloads by
// reference in a buffer of capacity c: the memory budget charges the
// records' bytes, so the payloads kept (keptByReference, append's rule)
// must make up three quarters of it. Not with
// compression: the payloads are new buffers then, and keeping saves no copy.
func keepsMostOf(b *recordBatch, c int, compress bool) bool {
	if compress {
		return false
	}
	kept := 0
	for _, r := range b.refs {
		if keptByReference(r) {
			kept += len(r)
		}
	}
	return kept >= c-c/4
}

func (v *Volume) commitAndMaybeFlush(b *recordBatch, fua bool) error {
	if len(b.lens) == 0 {
		return nil
	}
	end, err := v.commit(b)
	if err != nil {
		return err
	}
	if fua {
		return v.flushTo(end)
	}
	return nil
}

// zeroChunk bounds the memory of writing allocated zeros.
var zeroChunk = make([]byte, 1<<20)

// Zero makes [off, off+length) read as zeros. With punch the range is
// deallocated (hole records); without it zeros are stored as data, as
// NBD_CMD_FLAG_NO_HOLE asks. With fua the result is durable on return.
func (v *Volume) Zero(off, length int64, punch, fua bool) error {
	if err := v.checkOpen(true); err != nil {
		return err
	}
	if err := v.checkRange(off, length); err != nil {
		return err
	}
	b := batchPool.Get().(*recordBatch)
	defer func() { b.reset(); batchPool.Put(b) }()
	if punch {
		addHoles(b, off, length)
		return v.commitAndMaybeFlush(b, fua)
	}
	for length > 0 {
		n := min(length, int64(len(zeroChunk)))
		b.reset()
		v.addData(b, zeroChunk[:n], off, false)
		if err := v.commitAndMaybeFlush(b, fua && n == length); err != nil {
			return err
		}
		off, length = off+n, length-n
	}
	return nil
}

// flushTo makes the log durable up to end and confirms, before the caller
// acknowledges anything, that this process still owns the volume: after a
// pause longer than most of a lease another host may have taken over, so
// the lease is renewed first (ErrFenced when someone else holds it now).
func (v *Volume) flushTo(end segment.Pos) error {
	if err := v.lw.flush(end); err != nil {
		return err
	}
	return v.confirmOwner("acknowledging")
}

// confirmOwner makes sure this process still owns the volume before it
// acknowledges a write or changes what another owner would rely on
// (checkpoints, segment deletion): when the last renewal is older than most
// of a lease, it renews first, and a newer owner fences the log writer
// (ErrFenced). what says what waits on it, for the error.
func (v *Volume) confirmOwner(what string) error {
	if v.owner == nil || v.owner.leaseHeld() {
		return nil
	}
	if err := v.owner.renew(); err != nil {
		if errors.Is(err, ErrFenced) {
			v.lw.fence(err)
		}
		return fmt.Errorf("lfs: cannot confirm ownership of %s before %s: %w", v.name, what, err)
	}
	return nil
}

// Flush makes every write that completed before it durable.
func (v *Volume) Flush() error {
	if err := v.checkOpen(false); err != nil {
		return err
	}
	if v.lw == nil {
		return nil
	}
	return v.flushTo(v.lw.end())
}

// ReadAt fills p with the volume's bytes at off; holes read as zeros.
func (v *Volume) ReadAt(p []byte, off int64) error {
	if err := v.checkOpen(false); err != nil {
		return err
	}
	if err := v.checkRange(off, int64(len(p))); err != nil {
		return err
	}
	v.readGate.RLock()
	defer v.readGate.RUnlock()
	v.mu.RLock()
	m := v.mu.m
	v.mu.RUnlock()
	return v.readMap(m, &v.mu.RWMutex, p, off)
}

// readMap reads p at off through map m, looked up under lock mu (nil for a
// map nobody changes).
func (v *Volume) readMap(m *blockmap.Map, mu *sync.RWMutex, p []byte, off int64) error {
	var stack [16]blockmap.Extent
	exts := stack[:0]
	if mu != nil {
		mu.RLock()
	}
	m.Visit(off, int64(len(p)), func(e blockmap.Extent) bool {
		exts = append(exts, e)
		return true
	})
	if mu != nil {
		mu.RUnlock()
	}
	pos := off
	for _, e := range exts {
		clear(p[pos-off : e.Off-off])
		if err := v.readExtent(p[e.Off-off:e.End()-off], e); err != nil {
			return err
		}
		pos = e.End()
	}
	clear(p[pos-off:])
	return nil
}

// readExtent reads the bytes of e into dst (len(dst) == e.Length), and
// verifies every byte it returns: through the block checksums of the
// blocks that hold them, or, for a compressed record or one written before
// block checksums, the whole record's checksum. A mismatch is a
// *CorruptionError (EIO to a client), logged and counted; never wrong data.
func (v *Volume) readExtent(dst []byte, e blockmap.Extent) error {
	if e.Run() {
		return v.readRun(dst, e)
	}
	if e.BlockSums() && !e.Snappy() {
		return v.readBlocks(dst, e)
	}
	recOff := int64(e.PayOff) - segment.HeaderSize
	n := segment.HeaderSize + int(e.PayLen)
	if e.BlockSums() {
		n += segment.BlockSumsLen(e.PayLen)
	}
	rec := make([]byte, n)
	if err := v.readSegmentAt(keyOf(e), rec, recOff); err != nil {
		return err
	}
	h, payload, err := segment.Decode(rec, uint64(e.Seq))
	if err == nil && (h.Type != e.RecordType() || h.Flags != e.RecordFlags() || h.HasBlockSums() != e.BlockSums()) {
		err = fmt.Errorf("map points at a record of type %d", h.Type)
	}
	if err != nil {
		return v.damaged(keyOf(e), recOff, err)
	}
	data := payload
	if e.Snappy() {
		if data, err = snappy.Decode(nil, payload); err != nil || len(data) != int(h.LogicalLen) {
			return v.damaged(keyOf(e), recOff, fmt.Errorf("snappy payload does not decode to %d bytes", h.LogicalLen))
		}
	}
	copy(dst, data[e.Skip:e.Skip+e.Length])
	return nil
}

// readBlocks reads the bytes of e, an uncompressed record with block
// checksums, into dst: the checksum blocks that hold them (at most one
// extra block's worth on each side) and their checksums, verified. The
// checksums of a record of several blocks are cached (sumCache): a later
// read of it costs one store read.
func (v *Volume) readBlocks(dst []byte, e blockmap.Extent) error {
	const cb = segment.ChecksumBlock
	first, last := int64(e.Skip)/cb, (int64(e.Skip)+int64(e.Length)-1)/cb
	lo, hi := first*cb, min((last+1)*cb, int64(e.PayLen))
	k, rk := keyOf(e), keyOfRecord(e)
	sumsOff := int64(e.PayOff) + int64(e.PayLen)
	var data, sums []byte
	if all := v.sums.get(rk); all != nil {
		data, sums = dst, all[4*first:4*(last+1)]
		if lo != int64(e.Skip) || hi != int64(e.Skip)+int64(e.Length) {
			data = make([]byte, hi-lo) // dst is not whole blocks: read them aside
		}
		if err := v.readSegmentAt(k, data, int64(e.PayOff)+lo); err != nil {
			return err
		}
	} else if hi == int64(e.PayLen) {
		// The range reaches the payload's end, which the checksums follow:
		// one read, of them all.
		buf := make([]byte, hi-lo+int64(segment.BlockSumsLen(e.PayLen)))
		if err := v.readSegmentAt(k, buf, int64(e.PayOff)+lo); err != nil {
			return err
		}
		data, all = buf[:hi-lo], buf[hi-lo:]
		sums = all[4*first:]
		if last > 0 {
			// A copy: all shares buf, which the cache would keep whole
			// (64 KiB of data per 64 bytes of checksums).
			v.sums.put(rk, bytes.Clone(all))
		}
	} else {
		all = make([]byte, segment.BlockSumsLen(e.PayLen))
		data = make([]byte, hi-lo)
		if err := v.readSegmentAt(k, data, int64(e.PayOff)+lo); err != nil {
			return err
		}
		if err := v.readSegmentAt(k, all, sumsOff); err != nil {
			return err
		}
		sums = all[4*first : 4*(last+1)]
		v.sums.put(rk, all)
	}
	if i := segment.VerifyBlocks(data, sums); i >= 0 {
		v.sums.drop(rk) // the next read fetches them again
		return v.damaged(k, int64(e.PayOff)+lo+int64(i)*cb, fmt.Errorf("%w: checksum mismatch in a %d-byte block", segment.ErrCorrupt, cb))
	}
	if &data[0] != &dst[0] {
		copy(dst, data[int64(e.Skip)-lo:])
	}
	return nil
}

// runRecordsApart is the payload length from which the records of a run
// are read one by one (readBlocks: one store read each, straight into the
// caller's buffer once their checksums are cached) rather than as one
// stretch read aside and copied: 1 MiB writes make runs of 64 KiB records.
const runRecordsApart = 32 << 10

// readRun reads the bytes of e, a run extent, into dst. Records of
// runRecordsApart bytes or more, or a single record, are read as
// readBlocks reads them. Smaller records (sequential 4 KiB writes) are
// read with one read of the stretch of the segment from the first block
// needed to the checksums of the last record needed (headers and the
// checksums of the records between included); then each record's blocks
// are verified and copied.
func (v *Volume) readRun(dst []byte, e blockmap.Extent) error {
	const cb = segment.ChecksumBlock
	l, stride := int64(e.PayLen), blockmap.Stride(e.PayLen)
	j0, j1 := int64(e.Skip), int64(e.Skip)+int64(e.Length) // run bytes
	k0, k1 := j0/l, (j1-1)/l
	if k0 == k1 || l >= runRecordsApart {
		var err error
		e.Records(func(r blockmap.Extent) bool {
			err = v.readBlocks(dst[r.Off-e.Off:r.End()-e.Off], r)
			return err == nil
		})
		return err
	}
	sumsLen := int64(segment.BlockSumsLen(e.PayLen))
	first := (j0 - k0*l) / cb * cb // the first block of record k0 to read
	start := int64(e.PayOff) + k0*stride + first
	end := int64(e.PayOff) + k1*stride + l + sumsLen
	buf := make([]byte, end-start)
	k := keyOf(e)
	if err := v.readSegmentAt(k, buf, start); err != nil {
		return err
	}
	for rec := k0; rec <= k1; rec++ {
		at := rec*stride - k0*stride - first // payload of record rec in buf (may be negative for k0)
		lo, hi := max(j0, rec*l)-rec*l, min(j1, (rec+1)*l)-rec*l
		b0, b1 := lo/cb, (hi-1)/cb
		dlo, dhi := b0*cb, min((b1+1)*cb, l)
		sums := buf[at+l+4*b0 : at+l+4*(b1+1)]
		if i := segment.VerifyBlocks(buf[at+dlo:at+dhi], sums); i >= 0 {
			return v.damaged(k, int64(e.PayOff)+rec*stride+dlo+int64(i)*cb, fmt.Errorf("%w: checksum mismatch in a %d-byte block", segment.ErrCorrupt, cb))
		}
		copy(dst[rec*l+lo-j0:], buf[at+lo:at+hi])
	}
	return nil
}

// damaged reports data that failed its checksum at offset off of segment
// k: logged with volume, object and offset, counted, and returned as a
// *CorruptionError.
func (v *Volume) damaged(k segKey, off int64, err error) error {
	name := v.readers.name(k)
	v.checksumErrors.Add(1)
	v.log.Error("damaged data: a read failed its checksum; the request gets an I/O error", "object", name, "offset", off, "err", err)
	return corruptf(name, off, "%v", err)
}

// ChecksumErrors is the number of reads that failed a checksum since open.
func (v *Volume) ChecksumErrors() int64 { return v.checksumErrors.Load() }

// readSegmentAt reads bytes of a segment: the volume's own recent segments
// from memory while the store does not have them complete, the rest from
// the store.
func (v *Volume) readSegmentAt(k segKey, p []byte, off int64) error {
	if v.lw != nil && k.branch == v.lin.Branch {
		if ok, err := v.lw.readMem(k.seq, p, off); ok {
			return err
		}
	}
	return v.readers.readAt(k, p, off)
}

// Allocation reports [off, off+length) as runs of data and holes. It reports
// at most maxRuns runs per call; the caller asks again for the rest.
func (v *Volume) Allocation(off, length int64, fn func(length int64, hole bool) error) error {
	if err := v.checkOpen(false); err != nil {
		return err
	}
	if err := v.checkRange(off, length); err != nil {
		return err
	}
	return allocation(v.mu.m, &v.mu.RWMutex, off, length, fn)
}

const maxRuns = 1024

// allocation reports the runs of map m (looked up under mu, if not nil).
func allocation(m *blockmap.Map, mu *sync.RWMutex, off, length int64, fn func(length int64, hole bool) error) error {
	type run struct {
		n    int64
		hole bool
	}
	var runs []run
	add := func(n int64, hole bool) {
		if k := len(runs); k > 0 && runs[k-1].hole == hole {
			runs[k-1].n += n
		} else {
			runs = append(runs, run{n, hole})
		}
	}
	pos, end := off, off+length
	if mu != nil {
		mu.RLock()
	}
	m.Visit(off, length, func(e blockmap.Extent) bool {
		if e.Off > pos {
			add(e.Off-pos, true)
		}
		add(int64(e.Length), false)
		pos = e.End()
		return len(runs) < maxRuns
	})
	if mu != nil {
		mu.RUnlock()
	}
	if pos < end && len(runs) < maxRuns {
		add(end-pos, true)
	}
	for _, r := range runs {
		if err := fn(r.n, r.hole); err != nil {
			return err
		}
	}
	return nil
}
