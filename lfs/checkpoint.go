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

	"github.com/hlfs/hlfs/internal/objstore"
)

// Checkpoint layout (part of the format, never change; docs/format.md):
//
//	header 64 bytes: magic "HLC1", version u16, reserved u16, volume uid u64,
//	  position seq u64, position offset u64, extent count u64, volume size u64,
//	  created u64, reserved u32, CRC-32C of bytes 0..60
//	extents 32 bytes each: offset u64, length u32, seq u32, payload offset u32,
//	  payload length u32, skip u32, flags u8, branch u16, reserved 1
//	CRC-32C of all extent bytes
//	snapshot table (snapshot_table.go)
const ckptMagic uint32 = 0x31434c48

const (
	ckptHeaderLen = 64
	ckptExtentLen = 32
)

// checkpoint is a decoded checkpoint. Snapshot map objects (VOL/snap/<id>)
// use the same format with an empty snapshot table.
type checkpoint struct {
	pos   logPos
	size  int64
	m     *extentMap
	snaps *snapTable // nil writes an empty table
}

func putExtent(b []byte, e extent) {
	binary.LittleEndian.PutUint64(b[0:], uint64(e.off))
	binary.LittleEndian.PutUint32(b[8:], e.length)
	binary.LittleEndian.PutUint32(b[12:], e.seq)
	binary.LittleEndian.PutUint32(b[16:], e.payOff)
	binary.LittleEndian.PutUint32(b[20:], e.payLen)
	binary.LittleEndian.PutUint32(b[24:], e.skip)
	b[28] = e.flags
	binary.LittleEndian.PutUint16(b[29:], e.branch)
	b[31] = 0
}

func getExtent(b []byte) extent {
	return extent{
		off:    int64(binary.LittleEndian.Uint64(b[0:])),
		length: binary.LittleEndian.Uint32(b[8:]),
		seq:    binary.LittleEndian.Uint32(b[12:]),
		payOff: binary.LittleEndian.Uint32(b[16:]),
		payLen: binary.LittleEndian.Uint32(b[20:]),
		skip:   binary.LittleEndian.Uint32(b[24:]),
		flags:  b[28],
		branch: binary.LittleEndian.Uint16(b[29:]),
	}
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
	binary.LittleEndian.PutUint16(h[4:], formatVersion)
	binary.LittleEndian.PutUint64(h[8:], uid)
	binary.LittleEndian.PutUint64(h[16:], c.pos.seq)
	binary.LittleEndian.PutUint64(h[24:], uint64(c.pos.off))
	binary.LittleEndian.PutUint64(h[32:], uint64(c.m.len()))
	binary.LittleEndian.PutUint64(h[40:], uint64(c.size))
	binary.LittleEndian.PutUint64(h[48:], uint64(time.Now().UnixNano()))
	binary.LittleEndian.PutUint32(h[60:], crc32.Checksum(h[:60], castagnoli))
	_, _ = bw.Write(h[:])
	var crc uint32
	var eb [ckptExtentLen]byte
	c.m.ascend(func(e extent) bool {
		putExtent(eb[:], e)
		crc = crc32.Update(crc, castagnoli, eb[:])
		_, err = bw.Write(eb[:])
		return err == nil
	})
	var tb [4]byte
	binary.LittleEndian.PutUint32(tb[:], crc)
	_, _ = bw.Write(tb[:])
	snaps := c.snaps
	if snaps == nil {
		snaps = &snapTable{}
	}
	_, _ = bw.Write(snaps.encode())
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
	if v := binary.LittleEndian.Uint16(h[4:]); v > formatVersion {
		return checkpoint{}, fmt.Errorf("%w: checkpoint %s has version %d", ErrNewerFormat, name, v)
	}
	if binary.LittleEndian.Uint64(h[8:]) != uid {
		return checkpoint{}, corruptf(name, 8, "checkpoint belongs to another volume")
	}
	c := checkpoint{
		pos:  logPos{binary.LittleEndian.Uint64(h[16:]), int64(binary.LittleEndian.Uint64(h[24:]))},
		size: int64(binary.LittleEndian.Uint64(h[40:])),
		m:    newExtentMap(),
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
	snaps, err := decodeSnapTable(body[len(ext)+4:])
	if err != nil {
		return checkpoint{}, corruptf(name, int64(ckptHeaderLen+len(ext)+4), "%v", err)
	}
	c.snaps = snaps
	prevEnd := int64(0)
	for i := 0; i < len(ext); i += ckptExtentLen {
		e := getExtent(ext[i:])
		if e.length == 0 || e.off < prevEnd || e.end() > c.size {
			return checkpoint{}, corruptf(name, int64(ckptHeaderLen+i), "extent %d..%d out of order or out of range", e.off, e.end())
		}
		prevEnd = e.end()
		c.m.t.ReplaceOrInsert(e)
	}
	return c, nil
}

// listCheckpoints returns the positions of vol's checkpoints, newest first.
func listCheckpoints(st objstore.Store, vol string) ([]logPos, error) {
	names, err := st.List(ckptDir(vol))
	if err != nil {
		return nil, err
	}
	var out []logPos
	for _, n := range names {
		a, b, ok := strings.Cut(n, "-")
		seq, err1 := strconv.ParseUint(a, 16, 64)
		off, err2 := strconv.ParseInt(b, 16, 64)
		if !ok || err1 != nil || err2 != nil || len(a) != 16 || len(b) != 16 {
			continue // a temporary or foreign object
		}
		out = append(out, logPos{seq, off})
	}
	sort.Slice(out, func(i, j int) bool { return out[j].less(out[i]) })
	return out, nil
}
