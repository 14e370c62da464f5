package lfs

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// damageSuper replaces vol's superblock with its first n bytes (n < 0:
// removes it) and returns the superblock it had.
func damageSuper(t *testing.T, st objstore.Store, vol string, n int) superblock {
	t.Helper()
	b, err := readObject(st, superName(vol))
	require.NoError(t, err)
	sb, err := decodeSuperblock(superName(vol), b)
	require.NoError(t, err)
	require.NoError(t, st.Remove(superName(vol)))
	if n >= 0 {
		require.NoError(t, writeObject(st, superName(vol), b[:n]))
	}
	return sb
}

// writeRandom writes n random bytes at off and returns them.
func writeRandom(t *testing.T, v *Volume, rng *rand.Rand, off int64, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	rng.Read(p)
	require.NoError(t, v.WriteAt(p, off, false))
	return p
}

// A superblock cut short while the volume's log remains is damage, not a
// missing volume: every entry point says so (issue 10, item 2).
func TestTruncatedSuperblockIsDamaged(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	require.NoError(t, Create(st, "c", Config{Size: 4 << 20}))
	v := openChecked(t, st, "c", Options{})
	writeRandom(t, v, rand.New(rand.NewSource(1)), 0, 64<<10)
	require.NoError(t, v.Close())
	damageSuper(t, st, "c", 10)

	_, err := Open(st, "c", Options{})
	require.ErrorIs(t, err, ErrDamaged)
	require.True(t, IsCorruption(err))
	require.Contains(t, err.Error(), "c/super is 10 bytes, want 64, but its log remains")
	require.ErrorIs(t, Create(st, "c", Config{Size: 1 << 20}), ErrDamaged)
	require.ErrorIs(t, Resize(st, "c", 8<<20, false), ErrDamaged)

	names, err := List(st)
	require.NoError(t, err)
	require.Equal(t, []string{"c"}, names)
	info, err := Stat(st, "c")
	require.ErrorIs(t, err, ErrDamaged)
	require.Contains(t, info.Damage, "10 bytes")
	require.Positive(t, info.Segments)
	require.Positive(t, info.BytesStored)

	rep, err := Fsck(st, "c", nil)
	require.NoError(t, err)
	require.False(t, rep.OK())
	require.True(t, rep.SuperblockDamaged)

	// A missing superblock with the log left (an rm cut short, or lost)
	// is the same damage.
	require.NoError(t, st.Remove(superName("c")))
	_, err = Open(st, "c", Options{})
	require.ErrorIs(t, err, ErrDamaged)
	require.Contains(t, err.Error(), "superblock is missing")
}

// RepairSuperblock rebuilds every field it can from the checkpoint and the
// segment headers, and the volume reads as before.
func TestRepairSuperblock(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		cut      int // bytes of the superblock left; -1: none
		compress bool
	}{
		{"truncated", Config{Size: 8 << 20, SegmentSize: 1 << 20}, 10, false},
		{"missing", Config{Size: 8 << 20, SegmentSize: 1 << 20}, -1, false},
		{"empty", Config{Size: 8 << 20, SegmentSize: 1 << 20}, 0, false},
		{"compressed, 64 MiB segments", Config{Size: 6 << 20, BlockSize: 512, Compress: true, SegmentSize: 64 << 20}, 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := objstore.NewMemStore(false, 1)
			require.NoError(t, Create(st, "c", tc.cfg))
			v := openChecked(t, st, "c", Options{})
			rng := rand.New(rand.NewSource(2))
			model := make([]byte, tc.cfg.Size)
			for i := 0; i < 40; i++ {
				off := rng.Int63n(tc.cfg.Size - 64<<10)
				p := bytes.Repeat([]byte{byte(i + 1)}, 1+rng.Intn(64<<10)) // compressible
				if !tc.compress {
					rng.Read(p)
				}
				require.NoError(t, v.WriteAt(p, off, false))
				copy(model[off:], p)
			}
			require.NoError(t, v.Close())
			want := damageSuper(t, st, "c", tc.cut)

			rep, err := RepairSuperblock(st, "c")
			require.NoError(t, err)
			require.True(t, rep.Repaired)
			require.Empty(t, rep.Notes)
			got, err := readSuperblock(st, "c")
			require.NoError(t, err)
			require.Equal(t, want.uid, got.uid)
			require.Equal(t, want.size, got.size, rep.SizeFrom)
			require.Equal(t, want.compress, got.compress, rep.CompressFrom)
			require.False(t, rep.SizeLowerBound)
			// Recorded nowhere else: the defaults (every size here is a
			// multiple of 4 KiB; no segment outgrew 32 MiB).
			require.Equal(t, DefaultBlockSize, got.blockSize)
			require.Equal(t, DefaultSegmentSize, got.segmentSize, rep.SegmentFrom)
			require.False(t, got.created.After(want.created.Add(60e9)))

			ro := openChecked(t, st, "c", Options{ReadOnly: true})
			img := make([]byte, ro.Size())
			require.NoError(t, ro.ReadAt(img, 0))
			require.True(t, bytes.Equal(model, img), "the repaired volume reads other data")
			require.NoError(t, ro.Close())
			frep, err := Fsck(st, "c", nil)
			require.NoError(t, err)
			require.True(t, frep.OK(), "%v", frep.Problems)

			// Nothing to repair now.
			again, err := RepairSuperblock(st, "c")
			require.NoError(t, err)
			require.False(t, again.Repaired)
		})
	}
}

// A grow after the newest checkpoint is seen in the log: the repaired size
// covers every record written since.
func TestRepairSuperblockAfterGrow(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	require.NoError(t, Create(st, "g", Config{Size: 1 << 20}))
	v := openChecked(t, st, "g", Options{})
	writeRandom(t, v, rand.New(rand.NewSource(3)), 0, 4096)
	require.NoError(t, v.Close())
	require.NoError(t, Resize(st, "g", 4<<20, false))
	v, err := Open(st, "g", Options{CheckpointInterval: -1})
	require.NoError(t, err)
	tail := writeRandom(t, v, rand.New(rand.NewSource(4)), 3<<20, 8192)
	require.NoError(t, v.Flush())
	v.Abandon() // no checkpoint after the grow
	damageSuper(t, st, "g", 3)

	rep, err := RepairSuperblock(st, "g")
	require.NoError(t, err)
	require.Equal(t, int64(3<<20+8192), rep.Size, rep.SizeFrom)
	require.Contains(t, rep.SizeFrom, "a grow since")
	ro := openChecked(t, st, "g", Options{ReadOnly: true})
	got := make([]byte, len(tail))
	require.NoError(t, ro.ReadAt(got, 3<<20))
	require.Equal(t, tail, got)
	require.NoError(t, ro.Close())
}

// Without any checkpoint the size is the furthest record's end, flagged as
// a lower bound.
func TestRepairSuperblockWithoutCheckpoint(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	require.NoError(t, Create(st, "n", Config{Size: 16 << 20}))
	v, err := Open(st, "n", Options{CheckpointInterval: -1})
	require.NoError(t, err)
	writeRandom(t, v, rand.New(rand.NewSource(5)), 5<<20, 1000)
	require.NoError(t, v.Flush())
	v.Abandon()
	ckpts, err := st.List(ckptDir("n"))
	require.NoError(t, err)
	require.Empty(t, ckpts, "the test needs a volume without checkpoints")
	damageSuper(t, st, "n", 20)

	rep, err := RepairSuperblock(st, "n")
	require.NoError(t, err)
	require.True(t, rep.SizeLowerBound)
	require.Equal(t, int64(5<<20+1024), rep.Size)
	require.Equal(t, 1024, rep.BlockSize, "the largest power of two dividing the size")
}

// The repair refuses when the objects of two volumes share a folder, and
// while the volume is served.
func TestRepairSuperblockRefuses(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	for _, name := range []string{"a", "b"} {
		require.NoError(t, Create(st, name, Config{Size: 1 << 20}))
		v := openChecked(t, st, name, Options{})
		writeRandom(t, v, rand.New(rand.NewSource(6)), 0, 4096)
		require.NoError(t, v.Close())
	}
	// b's first segment in a's folder, under its own seq (a segment is
	// valid only under its seq: its records' checksums are seeded with it).
	foreign, err := readObject(st, segName("b", 1))
	require.NoError(t, err)
	require.NoError(t, st.Remove(segName("a", 1)))
	require.NoError(t, writeObject(st, segName("a", 1), foreign))
	damageSuper(t, st, "a", 0)
	_, err = RepairSuperblock(st, "a")
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), "belong to different volumes")

	require.NoError(t, Remove(st, "a"))
	_, err = Stat(st, "a")
	require.ErrorIs(t, err, ErrNotFound)

	// While served: a second process would hold the lock; here the
	// owner is this process, alive.
	own, err := acquireOwner(st, "b", "", nil, 0)
	require.NoError(t, err)
	damageSuper(t, st, "b", 5)
	_, err = RepairSuperblock(st, "b")
	require.ErrorIs(t, err, ErrInUse)
	require.ErrorIs(t, Remove(st, "b"), ErrInUse)
	require.NoError(t, own.release())
	require.NoError(t, Remove(st, "b"))
}
