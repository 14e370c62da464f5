package lfs

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
)

// Superblock layout (part of the format, never change; docs/format.md):
//
//	 0  4  magic "HLV1"
//	 4  2  format version
//	 6  2  flags (bit 0: compress)
//	 8  8  volume uid
//	16  8  size in bytes
//	24  4  block size
//	28  4  segment size
//	32  8  created, Unix nanoseconds
//	40  2  replication factor (0: the store's default)
//	42 18  reserved
//	60  4  CRC-32C of bytes 0..60
const (
	superMagic    uint32 = 0x31564c48
	superLen             = 64
	formatVersion        = 1
	flagCompress  uint16 = 1

	// DefaultBlockSize is the block size of volumes created without one.
	DefaultBlockSize = 4096
	// DefaultSegmentSize is the segment size target of new volumes.
	DefaultSegmentSize = 32 << 20
	minSegmentSize     = 1 << 20
	maxSegmentSize     = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// superblock is the volume's fixed configuration.
type superblock struct {
	uid         uint64
	size        int64
	blockSize   int
	segmentSize int
	compress    bool
	created     time.Time
	replication int
}

// Config is what Create needs to make a volume.
type Config struct {
	// Size in bytes: a positive multiple of BlockSize.
	Size int64
	// BlockSize: a power of two from 512 to 65536; zero means 4096.
	BlockSize int
	// Compress payloads with snappy where it saves space.
	Compress bool
	// SegmentSize target in bytes, 1 MiB to 1 GiB; zero means 32 MiB.
	SegmentSize int
	// Replication is the replication factor of the volume's objects on
	// stores that replicate (HDFS), 0 to 32; zero means the store's default.
	Replication int
}

func (c Config) withDefaults() Config {
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.SegmentSize == 0 {
		c.SegmentSize = DefaultSegmentSize
	}
	return c
}

func (c Config) validate() error {
	if c.BlockSize < 512 || c.BlockSize > 65536 || c.BlockSize&(c.BlockSize-1) != 0 {
		return fmt.Errorf("%w: block size %d must be a power of two from 512 to 64K", ErrInvalidConfig, c.BlockSize)
	}
	if err := checkSize(c.Size, c.BlockSize); err != nil {
		return err
	}
	if c.Replication < 0 || c.Replication > 32 {
		return fmt.Errorf("%w: replication %d must be from 1 to 32 (0: the store's default)", ErrInvalidConfig, c.Replication)
	}
	if c.SegmentSize < minSegmentSize || c.SegmentSize > maxSegmentSize {
		return fmt.Errorf("%w: segment size %d must be from 1M to 1G", ErrInvalidConfig, c.SegmentSize)
	}
	return nil
}

// maxVolumeSize keeps every volume offset and length within int64.
const maxVolumeSize = 1 << 62

func checkSize(size int64, blockSize int) error {
	if size <= 0 || size > maxVolumeSize {
		return fmt.Errorf("%w: size %d must be positive and at most 4 EiB", ErrInvalidConfig, size)
	}
	if size%int64(blockSize) != 0 {
		return fmt.Errorf("%w: size %d is not a multiple of the block size %d", ErrInvalidConfig, size, blockSize)
	}
	return nil
}

func newUID() uint64 {
	var b [8]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return binary.LittleEndian.Uint64(b[:])
}

func (sb superblock) encode() []byte {
	b := make([]byte, superLen)
	binary.LittleEndian.PutUint32(b[0:], superMagic)
	binary.LittleEndian.PutUint16(b[4:], formatVersion)
	if sb.compress {
		binary.LittleEndian.PutUint16(b[6:], flagCompress)
	}
	binary.LittleEndian.PutUint64(b[8:], sb.uid)
	binary.LittleEndian.PutUint64(b[16:], uint64(sb.size))
	binary.LittleEndian.PutUint32(b[24:], uint32(sb.blockSize))
	binary.LittleEndian.PutUint32(b[28:], uint32(sb.segmentSize))
	binary.LittleEndian.PutUint64(b[32:], uint64(sb.created.UnixNano()))
	binary.LittleEndian.PutUint16(b[40:], uint16(sb.replication))
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	return b
}

func decodeSuperblock(object string, b []byte) (superblock, error) {
	if len(b) != superLen {
		return superblock{}, corruptf(object, 0, "superblock is %d bytes, want %d", len(b), superLen)
	}
	if binary.LittleEndian.Uint32(b[0:]) != superMagic {
		return superblock{}, corruptf(object, 0, "bad superblock magic")
	}
	if crc32.Checksum(b[:60], castagnoli) != binary.LittleEndian.Uint32(b[60:]) {
		return superblock{}, corruptf(object, 60, "superblock checksum mismatch")
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v > formatVersion {
		return superblock{}, fmt.Errorf("%w: %s has version %d, this binary reads up to %d", ErrNewerFormat, object, v, formatVersion)
	}
	sb := superblock{
		uid:         binary.LittleEndian.Uint64(b[8:]),
		size:        int64(binary.LittleEndian.Uint64(b[16:])),
		blockSize:   int(binary.LittleEndian.Uint32(b[24:])),
		segmentSize: int(binary.LittleEndian.Uint32(b[28:])),
		compress:    binary.LittleEndian.Uint16(b[6:])&flagCompress != 0,
		created:     time.Unix(0, int64(binary.LittleEndian.Uint64(b[32:]))),
		replication: int(binary.LittleEndian.Uint16(b[40:])),
	}
	cfg := Config{Size: sb.size, BlockSize: sb.blockSize, SegmentSize: sb.segmentSize, Replication: sb.replication}
	if err := cfg.validate(); err != nil {
		return superblock{}, corruptf(object, 0, "%v", err)
	}
	return sb, nil
}

// readSuperblock loads the superblock of vol. It returns ErrNotFound when
// the volume does not exist: no superblock, or one cut short by an
// interrupted creation (its name is durable before its bytes), and no log.
// It returns a *DamagedError when the superblock does not decode, or is
// missing or short while the volume's log (segments or checkpoints)
// remains (docs/format.md, "What a store's root holds").
func readSuperblock(st objstore.Store, vol string) (superblock, error) {
	b, err := readObject(st, superName(vol))
	missing := errors.Is(err, objstore.ErrNotExist)
	if err != nil && !missing {
		return superblock{}, err
	}
	if !missing && len(b) >= superLen {
		sb, err := decodeSuperblock(superName(vol), b)
		if IsCorruption(err) {
			return superblock{}, &DamagedError{Volume: vol, Reason: strings.TrimPrefix(err.Error(), "lfs: ")}
		}
		return sb, err
	}
	segs, ckpts, err := countLog(st, vol)
	if err != nil {
		return superblock{}, err
	}
	if segs+ckpts > 0 {
		what := "its superblock is missing"
		if !missing {
			what = fmt.Sprintf("its superblock %s is %d bytes, want %d", superName(vol), len(b), superLen)
		}
		return superblock{}, &DamagedError{Volume: vol,
			Reason: fmt.Sprintf("%s, but its log remains (%d segment objects, %d checkpoints)", what, segs, ckpts)}
	}
	if missing {
		return superblock{}, fmt.Errorf("%w: %s", ErrNotFound, vol)
	}
	return superblock{}, fmt.Errorf("%w: %s (its creation was interrupted)", ErrNotFound, vol)
}

// countLog counts the segment objects and checkpoint objects of vol.
func countLog(st objstore.Store, vol string) (segs, ckpts int, err error) {
	for _, c := range []struct {
		dir string
		n   *int
	}{{segDir(vol), &segs}, {ckptDir(vol), &ckpts}} {
		names, err := st.List(c.dir)
		if errors.Is(err, objstore.ErrNotFolder) {
			continue // a stray object where the folder would be
		}
		if err != nil {
			return 0, 0, err
		}
		*c.n = len(names)
	}
	return segs, ckpts, nil
}

// createSuperblock writes the superblock of a new volume, exclusively: it
// fails with ErrExists when the volume exists. A superblock left short by an
// interrupted creation is replaced.
func createSuperblock(st objstore.Store, vol string, sb superblock) error {
	if _, err := readSuperblock(st, vol); err == nil {
		return fmt.Errorf("%w: %s", ErrExists, vol)
	} else if errors.Is(err, ErrNotFound) {
		_ = st.Remove(superName(vol)) // an interrupted creation, if any
	} else {
		return err
	}
	err := writeObject(st, superName(vol), sb.encode())
	if errors.Is(err, objstore.ErrExist) {
		return fmt.Errorf("%w: %s", ErrExists, vol)
	}
	return err
}

// writeSuperblock replaces the superblock atomically.
func writeSuperblock(st objstore.Store, vol string, sb superblock) error {
	return replaceObject(st, superName(vol), sb.encode())
}

// replaceObject replaces object name atomically: it writes b to a new
// object beside it, closes it (durable) and renames it over name. The
// temporary object is removed when any step fails, so failures (a full
// disk) leave nothing behind.
func replaceObject(st objstore.Store, name string, b []byte) error {
	tmp := fmt.Sprintf("%s.tmp-%016x", name, newUID())
	err := writeObject(st, tmp, b)
	if err == nil {
		err = st.Rename(tmp, name)
	}
	if err != nil {
		_ = st.Remove(tmp)
	}
	return err
}

// readObject reads a whole object.
func readObject(st objstore.Store, name string) ([]byte, error) { return objstore.ReadAll(st, name) }

// writeObject creates name with contents b, durably.
func writeObject(st objstore.Store, name string, b []byte) error {
	return objstore.WriteAll(st, name, b)
}
