package lfs

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
	"github.com/hlfs/hlfs/snapshot"
)

// Checkpoint layout (part of the format, never change; docs/format.md):
//
//	header 64 bytes: magic "HLC1", version u16, reserved u16, volume uid u64,
//	  position seq u64, position offset u64, extent count u64, volume size u64,
//	  created u64, reserved u32, CRC-32C of bytes 0..60
//	extents 32 bytes each: offset u64, length u32, seq u32, payload offset u32,
//	  payload length u32, skip u32, flags u8, branch u16, reserved 1
//	CRC-32C of all extent bytes
//	snapshot table (snapshot.Tree.Encode)
const ckptMagic uint32 = 0x31434c48

const (
	ckptHeaderLen = 64
	ckptExtentLen = blockmap.ExtentLen
	// ckptVersion is the checkpoint format this binary writes. Versions 3
	// and 4 have version 2's layout; version 3 extents may name records
	// with block checksums (blockmap.FlagBlockSums), which a version 2
	// reader would misread, and version 4 extents may be runs of records
	// (blockmap.FlagRun), which a version 3 reader would misread, so each
	// refuses the next. Versions 1 (no space books, no map generations), 2
	// and 3 are read too.
	ckptVersion = 4
)

// checkpoint is a decoded checkpoint. Snapshot map objects (VOL/snap/<id>)
// use the same format with an empty snapshot table.
type checkpoint struct {
	pos   segment.Pos
	size  int64
	m     *blockmap.Map
	snaps *snapshot.Tree // nil writes an empty table
	// live and exact are the space books (books.live); a version 1
	// checkpoint has none (exact false).
	live  map[uint64]int64
	exact bool
}

// writeCheckpoint streams c as object name, durably. The caller has made the
// log durable up to c.pos.
func writeCheckpoint(st objstore.Store, name string, uid uint64, c checkpoint) error {
	w, err := st.Create(name)
	if errors.Is(err, objstore.ErrExist) {
		// Left by a crash before it was durable (recovery skipped it as
		// damaged), or a valid one of the same position: same content.
		if err = st.Remove(name); err == nil {
			w, err = st.Create(name)
		}
	}
	if err != nil {
		return fmt.Errorf("lfs: create checkpoint %s: %w", name, err)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var h [ckptHeaderLen]byte
	binary.LittleEndian.PutUint32(h[0:], ckptMagic)
	binary.LittleEndian.PutUint16(h[4:], ckptVersion)
	binary.LittleEndian.PutUint64(h[8:], uid)
	binary.LittleEndian.PutUint64(h[16:], c.pos.Seq)
	binary.LittleEndian.PutUint64(h[24:], uint64(c.pos.Off))
	binary.LittleEndian.PutUint64(h[32:], uint64(c.m.Len()))
	binary.LittleEndian.PutUint64(h[40:], uint64(c.size))
	binary.LittleEndian.PutUint64(h[48:], uint64(time.Now().UnixNano()))
	binary.LittleEndian.PutUint32(h[60:], crc32.Checksum(h[:60], castagnoli))
	_, _ = bw.Write(h[:])
	var crc uint32
	var eb [ckptExtentLen]byte
	c.m.Ascend(func(e blockmap.Extent) bool {
		blockmap.EncodeExtent(eb[:], e)
		crc = crc32.Update(crc, castagnoli, eb[:])
		_, err = bw.Write(eb[:])
		return err == nil
	})
	var tb [4]byte
	binary.LittleEndian.PutUint32(tb[:], crc)
	_, _ = bw.Write(tb[:])
	_, _ = bw.Write(encodeBooks(c.live, c.exact))
	snaps := c.snaps
	if snaps == nil {
		snaps = &snapshot.Tree{}
	}
	_, _ = bw.Write(snaps.Encode())
	if err == nil {
		err = bw.Flush()
	}
	if cerr := objstore.CloseDurably(w); err == nil {
		err = cerr
	}
	if err != nil {
		_ = st.Remove(name)
		return fmt.Errorf("lfs: write checkpoint %s: %w", name, err)
	}
	return nil
}

// decodeCheckpoint parses and verifies a checkpoint object's bytes.
func decodeCheckpoint(name string, uid uint64, b []byte) (checkpoint, error) {
	if len(b) < ckptHeaderLen+4 {
		return checkpoint{}, corruptf(name, 0, "checkpoint of %d bytes is too short", len(b))
	}
	h := b[:ckptHeaderLen]
	if binary.LittleEndian.Uint32(h[0:]) != ckptMagic {
		return checkpoint{}, corruptf(name, 0, "bad checkpoint magic")
	}
	if crc32.Checksum(h[:60], castagnoli) != binary.LittleEndian.Uint32(h[60:]) {
		return checkpoint{}, corruptf(name, 60, "checkpoint header checksum mismatch")
	}
	ver := binary.LittleEndian.Uint16(h[4:])
	if ver > ckptVersion {
		return checkpoint{}, fmt.Errorf("%w: checkpoint %s has version %d", ErrNewerFormat, name, ver)
	}
	if binary.LittleEndian.Uint64(h[8:]) != uid {
		return checkpoint{}, corruptf(name, 8, "checkpoint belongs to another volume")
	}
	c := checkpoint{
		pos:  segment.Pos{Seq: binary.LittleEndian.Uint64(h[16:]), Off: int64(binary.LittleEndian.Uint64(h[24:]))},
		size: int64(binary.LittleEndian.Uint64(h[40:])),
		m:    blockmap.New(),
	}
	n := binary.LittleEndian.Uint64(h[32:])
	body := b[ckptHeaderLen:]
	if n > uint64(len(body))/ckptExtentLen || uint64(len(body)) < n*ckptExtentLen+4 {
		return checkpoint{}, corruptf(name, ckptHeaderLen, "checkpoint holds %d bytes after its header, too few for %d extents", len(body), n)
	}
	ext := body[:n*ckptExtentLen]
	if crc32.Checksum(ext, castagnoli) != binary.LittleEndian.Uint32(body[len(ext):]) {
		return checkpoint{}, corruptf(name, int64(ckptHeaderLen+len(ext)), "checkpoint extents checksum mismatch")
	}
	rest, restOff := body[len(ext)+4:], int64(ckptHeaderLen+len(ext)+4)
	if ver >= 2 {
		n, err := c.decodeBooks(rest)
		if err != nil {
			return checkpoint{}, corruptf(name, restOff, "%v", err)
		}
		rest, restOff = rest[n:], restOff+int64(n)
	}
	snaps, err := snapshot.DecodeTree(rest, min(ver, snapshot.TreeVersion))
	if err != nil {
		return checkpoint{}, corruptf(name, restOff, "%v", err)
	}
	c.snaps = snaps
	prevEnd := int64(0)
	for i := 0; i < len(ext); i += ckptExtentLen {
		e := blockmap.DecodeExtent(ext[i:])
		known := blockmap.KnownFlags
		if ver < 4 {
			known &^= blockmap.FlagRun
		}
		if e.Flags&^known != 0 {
			return checkpoint{}, corruptf(name, int64(ckptHeaderLen+i), "extent with unknown flags %#x", e.Flags)
		}
		if e.Run() && (!e.BlockSums() || e.Snappy() || e.PayLen == 0 || e.PayLen > segment.MaxDataLen) {
			return checkpoint{}, corruptf(name, int64(ckptHeaderLen+i), "run extent with flags %#x and record payload length %d", e.Flags, e.PayLen)
		}
		if e.Length == 0 || e.Off < prevEnd || e.End() > c.size {
			return checkpoint{}, corruptf(name, int64(ckptHeaderLen+i), "extent %d..%d out of order or out of range", e.Off, e.End())
		}
		prevEnd = e.End()
		c.m.InsertDisjoint(e)
	}
	return c, nil
}

// listCheckpoints returns the positions of vol's checkpoints, newest first.
func listCheckpoints(st objstore.Store, vol string) ([]segment.Pos, error) {
	names, err := st.List(ckptDir(vol))
	if err != nil {
		return nil, err
	}
	var out []segment.Pos
	for _, n := range names {
		a, b, ok := strings.Cut(n, "-")
		seq, err1 := strconv.ParseUint(a, 16, 64)
		off, err2 := strconv.ParseInt(b, 16, 64)
		if !ok || err1 != nil || err2 != nil || len(a) != 16 || len(b) != 16 {
			continue // a temporary or foreign object
		}
		out = append(out, segment.Pos{Seq: seq, Off: off})
	}
	sort.Slice(out, func(i, j int) bool { return out[j].Less(out[i]) })
	return out, nil
}

// Space books section (version 2), between the extents and the snapshot
// table: exact u8, count N u32, N × (segment seq u64, live bytes u64) in
// ascending seq, CRC-32C of the section.
func encodeBooks(live map[uint64]int64, exact bool) []byte {
	seqs := make([]uint64, 0, len(live))
	for seq, n := range live {
		if n > 0 {
			seqs = append(seqs, seq)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	b := make([]byte, 5, 9+16*len(seqs))
	if exact {
		b[0] = 1
	}
	binary.LittleEndian.PutUint32(b[1:], uint32(len(seqs)))
	for _, seq := range seqs {
		b = binary.LittleEndian.AppendUint64(b, seq)
		b = binary.LittleEndian.AppendUint64(b, uint64(live[seq]))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeBooks decodes the books section at the start of b into c and
// returns its length.
func (c *checkpoint) decodeBooks(b []byte) (int, error) {
	if len(b) < 9 || b[0] > 1 {
		return 0, fmt.Errorf("space books section missing or bad")
	}
	n := uint64(binary.LittleEndian.Uint32(b[1:]))
	size := 5 + 16*n + 4
	if uint64(len(b)) < size {
		return 0, fmt.Errorf("space books section cut short")
	}
	if crc32.Checksum(b[:size-4], castagnoli) != binary.LittleEndian.Uint32(b[size-4:]) {
		return 0, fmt.Errorf("space books checksum mismatch")
	}
	c.exact, c.live = b[0] == 1, make(map[uint64]int64, n)
	prev := uint64(0)
	for i := uint64(0); i < n; i++ {
		e := b[5+16*i:]
		seq, live := binary.LittleEndian.Uint64(e), int64(binary.LittleEndian.Uint64(e[8:]))
		if seq <= prev || live <= 0 {
			return 0, fmt.Errorf("space books entry %d out of order or not positive", i)
		}
		c.live[seq], prev = live, seq
	}
	return int(size), nil
}
