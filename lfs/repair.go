package lfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
)

// Repair is what RepairSuperblock rebuilt, each field with where it came
// from (docs/format.md, "Rebuilding a damaged superblock").
type Repair struct {
	// Repaired is false when the superblock was intact: nothing was
	// written and the other fields are zero.
	Repaired bool
	// Damage is what was wrong with the superblock.
	Damage string

	UID     uint64
	UIDFrom string
	Size    int64
	// SizeFrom says where the size came from; SizeLowerBound is set when
	// no checkpoint told it and the volume may have been larger.
	SizeFrom        string
	SizeLowerBound  bool
	BlockSize       int
	BlockSizeFrom   string
	SegmentSize     int
	SegmentFrom     string
	Compress        bool
	CompressFrom    string
	Created         time.Time
	CreatedFrom     string
	Replication     int
	ReplicationFrom string
	// Notes are what the repair could not read; fsck says more.
	Notes []string
}

// replicationReporter is implemented by stores that know the replication
// factor of an object (HDFS).
type replicationReporter interface {
	Replication(name string) (int, error)
}

// RepairSuperblock rebuilds the superblock of a damaged volume (one whose
// superblock is missing, short or does not decode while its log remains)
// from its checkpoints and segment headers, and writes it in place. It
// takes the owner lock while it works, so it fails with ErrInUse while the
// volume is served. On a volume whose superblock is intact it changes
// nothing (Repaired false). It fails with ErrNotFound when there is no
// volume, and with an error wrapping ErrCorrupt when nothing names the
// volume's uid or the objects disagree about it.
func RepairSuperblock(st objstore.Store, name string) (Repair, error) {
	var rep Repair
	if err := ValidateName(name); err != nil {
		return rep, err
	}
	_, err := readSuperblock(st, name)
	var damaged *DamagedError
	if !errors.As(err, &damaged) {
		return rep, err // nil: intact
	}
	rep.Damage = damaged.Reason
	own, err := acquireOwner(st, name, "", nil, 0)
	if err != nil {
		return rep, err
	}
	defer func() { _ = own.release() }()
	sb, err := rebuildSuperblock(st, name, &rep)
	if err != nil {
		return rep, err
	}
	if err := writeSuperblock(st, name, sb); err != nil {
		return rep, fmt.Errorf("lfs: write the rebuilt superblock of %s: %w", name, err)
	}
	rep.Repaired = true
	indexUnknown(st, name, sb.uid, own.epoch)
	return rep, nil
}

// rebuildSuperblock works out every field of vol's superblock from its
// objects, noting in rep where each came from.
func rebuildSuperblock(st objstore.Store, vol string, rep *Repair) (superblock, error) {
	seqs, attempts, err := segmentAttempts(st, vol)
	if err != nil {
		return superblock{}, err
	}
	// The segment headers: uids, creation times, object sizes.
	uids := map[uint64]string{} // uid → the first object naming it
	var created int64
	var createdFrom string
	var largest int64
	var newest string
	for _, seq := range seqs {
		for _, a := range attempts[seq] {
			obj := segObjName(vol, seq, a)
			sh, size, err := readSegmentHeader(st, obj, seq)
			if err != nil && !IsCorruption(err) {
				return superblock{}, err
			}
			largest = max(largest, size)
			newest = obj
			if err != nil {
				if size >= segment.SegmentHeaderLen { // else nothing of it was durable yet
					rep.Notes = append(rep.Notes, err.Error())
				}
				continue
			}
			if _, ok := uids[sh.VolumeUID]; !ok {
				uids[sh.VolumeUID] = obj
			}
			if sh.Created > 0 && (created == 0 || sh.Created < created) {
				created, createdFrom = sh.Created, "from the header of "+obj
			}
		}
	}
	// The newest checkpoint that validates.
	ck, err := newestCheckpoint(st, vol, rep)
	if err != nil {
		return superblock{}, err
	}
	ckName, ckCreated := ck.name, ck.created
	if ckName != "" {
		if _, ok := uids[ck.uid]; !ok {
			uids[ck.uid] = ckName
		}
	}
	switch len(uids) {
	case 0:
		return superblock{}, corruptf(superName(vol), 0, "cannot rebuild the superblock: no segment header and no checkpoint of %s could be read", vol)
	case 1:
	default:
		var names []string
		for uid, obj := range uids {
			names = append(names, fmt.Sprintf("%016x in %s", uid, obj))
		}
		slices.Sort(names)
		return superblock{}, corruptf(superName(vol), 0, "cannot rebuild the superblock: the objects of %s belong to different volumes (uid %v)", vol, names)
	}
	for uid, obj := range uids {
		rep.UID, rep.UIDFrom = uid, "from the segment headers and the checkpoint (first: "+obj+")"
	}

	// Replay the log after the checkpoint as recovery would, with a
	// provisional superblock as large as a volume may be, noting how far
	// data and hole records reach and whether any data is compressed.
	lin, err := readLineage(st, vol)
	if err != nil && !IsCorruption(err) {
		return superblock{}, err
	}
	if err != nil {
		rep.Notes = append(rep.Notes, err.Error())
	}
	prov := superblock{uid: rep.UID, size: maxVolumeSize, blockSize: DefaultBlockSize, segmentSize: DefaultSegmentSize}
	var reach int64
	compressed := ""
	if ckName != "" {
		ck.m.Ascend(func(e blockmap.Extent) bool {
			if e.Snappy() {
				compressed = "from compressed extents in " + ckName
				return false
			}
			return true
		})
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, err = replay(st, volMeta{vol, prov, lin}, true, quiet, func(seq uint64, off int, h segment.Header) {
		if h.Type == segment.TypeData || h.Type == segment.TypeHole {
			reach = max(reach, int64(h.Addr)+int64(h.LogicalLen))
		}
		if h.Type == segment.TypeData && h.Flags&segment.FlagSnappy != 0 && compressed == "" {
			compressed = fmt.Sprintf("from a compressed data record in %s at offset %d", segName(vol, seq), off)
		}
	})
	if err != nil {
		if !IsCorruption(err) && !errors.Is(err, ErrNewerFormat) {
			return superblock{}, err
		}
		rep.Notes = append(rep.Notes, "the log could not be replayed to its end: "+err.Error())
	}

	// Size: the checkpoint's, raised to what the log after it writes.
	const minBlock = 512
	reach = roundUp(reach, minBlock)
	switch {
	case ckName != "" && reach > ck.size:
		rep.Size, rep.SizeFrom = reach, fmt.Sprintf("from the end of the furthest record after checkpoint %s, which says %d bytes: a grow since", ckName, ck.size)
	case ckName != "":
		rep.Size, rep.SizeFrom = roundUp(ck.size, minBlock), "from checkpoint "+ckName
	case reach > 0:
		rep.Size, rep.SizeFrom, rep.SizeLowerBound = reach, "from the end of the furthest record in the log (no checkpoint records it)", true
	default:
		rep.Size, rep.SizeFrom, rep.SizeLowerBound = 1<<20, "nothing records it (no checkpoint, no data)", true
	}
	rep.Size = min(rep.Size, maxVolumeSize)
	rep.BlockSize, rep.BlockSizeFrom = DefaultBlockSize, "the default (recorded nowhere else)"
	for rep.Size%int64(rep.BlockSize) != 0 {
		rep.BlockSize /= 2
		rep.BlockSizeFrom = "the largest power of two that divides the size (recorded nowhere else)"
	}
	rep.SegmentSize, rep.SegmentFrom = DefaultSegmentSize, "the default (recorded nowhere else)"
	if largest > DefaultSegmentSize {
		rep.SegmentSize = int(min(roundUp(largest, 1<<20), maxSegmentSize))
		rep.SegmentFrom = "from the largest segment object, rounded up to a MiB"
	}
	rep.Compress, rep.CompressFrom = compressed != "", "no compressed data in the newest checkpoint or the log after it"
	if rep.Compress {
		rep.CompressFrom = compressed
	}
	switch {
	case created > 0:
		rep.Created, rep.CreatedFrom = time.Unix(0, created).UTC(), createdFrom
	case ckCreated > 0:
		rep.Created, rep.CreatedFrom = time.Unix(0, ckCreated).UTC(), "from checkpoint "+ckName
	default:
		rep.Created, rep.CreatedFrom = nowUTC(), "now: nothing older records it"
	}
	rep.ReplicationFrom = "the store's default (this store does not record it)"
	if rr, ok := st.(replicationReporter); ok && newest != "" {
		if n, err := rr.Replication(newest); err == nil && n > 0 && n <= 32 {
			rep.Replication, rep.ReplicationFrom = n, "from "+newest
		}
	}
	return superblock{uid: rep.UID, size: rep.Size, blockSize: rep.BlockSize, segmentSize: rep.SegmentSize,
		compress: rep.Compress, created: rep.Created, replication: rep.Replication}, nil
}

// readSegmentHeader reads the segment header record at the start of the
// segment object obj, an attempt of segment seq (the seq its name gives),
// and the object's size.
func readSegmentHeader(st objstore.Store, obj string, seq uint64) (segment.SegmentHeader, int64, error) {
	r, err := st.Open(obj)
	if err != nil {
		return segment.SegmentHeader{}, 0, err
	}
	defer r.Close()
	buf := make([]byte, segment.SegmentHeaderLen)
	if _, err := r.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return segment.SegmentHeader{}, r.Size(), err
	}
	sh, err := segment.DecodeSegmentHeader(buf, seq)
	if err != nil {
		return sh, r.Size(), corruptf(obj, 0, "segment header: %v", err)
	}
	return sh, r.Size(), nil
}

// foundCheckpoint is a checkpoint the repair read: name is "" for none.
type foundCheckpoint struct {
	checkpoint
	name    string
	uid     uint64
	created int64 // Unix nanoseconds
}

// newestCheckpoint returns the newest checkpoint of vol that validates
// under the uid its own header names. Checkpoints that do not validate go
// to rep.Notes.
func newestCheckpoint(st objstore.Store, vol string, rep *Repair) (foundCheckpoint, error) {
	positions, err := listCheckpoints(st, vol)
	if err != nil {
		return foundCheckpoint{}, err
	}
	for _, p := range positions {
		name := ckptName(vol, p)
		b, err := readObject(st, name)
		if errors.Is(err, objstore.ErrNotExist) {
			continue
		}
		if err != nil {
			return foundCheckpoint{}, err
		}
		var uid uint64
		var created int64
		if len(b) >= ckptHeaderLen && crc32.Checksum(b[:60], castagnoli) == binary.LittleEndian.Uint32(b[60:]) {
			uid, created = binary.LittleEndian.Uint64(b[8:]), int64(binary.LittleEndian.Uint64(b[48:]))
		}
		c, err := decodeCheckpoint(name, uid, b)
		if err == nil && c.pos != p {
			err = corruptf(name, 16, "checkpoint position %v differs from its name", c.pos)
		}
		if err != nil {
			rep.Notes = append(rep.Notes, "skipped "+err.Error())
			continue
		}
		return foundCheckpoint{checkpoint: c, name: name, uid: uid, created: created}, nil
	}
	return foundCheckpoint{}, nil
}

// roundUp rounds n up to a multiple of m.
func roundUp(n, m int64) int64 { return (n + m - 1) / m * m }
