package lfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand"
	"testing"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
	"github.com/stretchr/testify/require"
)

// TestEveryReadIsVerified flips a bit at each class of position of a
// record (header, first, middle and last payload block, block checksums,
// compressed payload) in logs written by 4 KiB, 64 KiB and 1 MiB writes,
// then reads every 4 KiB block and unaligned ranges: each read returns the
// right bytes or a corruption error, never wrong bytes, and a read of the
// damaged block of an uncompressed payload always fails.
func TestEveryReadIsVerified(t *testing.T) {
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
		for _, compress := range []bool{false, true} {
			t.Run(fmt.Sprintf("write=%dK/compress=%v", size>>10, compress), func(t *testing.T) {
				rng := rand.New(rand.NewSource(int64(size)))
				base := objstore.NewMemStore(false, 1)
				const volSize = 2 << 20
				require.NoError(t, Create(base, "r", Config{Size: volSize, SegmentSize: 4 << 20, Compress: compress}))
				v := openChecked(t, base, "r", Options{CheckpointInterval: -1})
				want := make([]byte, volSize)
				chunk := make([]byte, 64) // repeated: compressible
				rng.Read(chunk)
				for off := 4096; off+size <= volSize && off < 4096+3*size; off += size {
					p := want[off : off+size]
					for i := range p {
						p[i] = chunk[i%len(chunk)] ^ byte(i/4096) ^ byte(off>>12)
					}
					require.NoError(t, v.WriteAt(p, int64(off), false))
				}
				require.NoError(t, v.Close()) // a checkpoint: reopening replays nothing
				buf, err := readObject(base, segName("r", 1))
				require.NoError(t, err)
				type target struct {
					what string
					pos  int64
					addr int64 // volume byte whose block must fail, -1: any outcome
				}
				var targets []target
				sc := segment.NewScanner(buf, segment.SegmentHeaderLen, 1)
				for rec := 0; sc.Next(); {
					h := sc.Header()
					if h.Type != segment.TypeData {
						continue
					}
					// Of a run of records, the first, one in the middle and
					// the last: every kind of neighbour, at a bounded cost.
					if rec++; rec != 1 && rec != 8 && rec != 16 && rec != 48 {
						continue
					}
					rec, pay := int64(sc.Offset()), int64(sc.Offset())+segment.HeaderSize
					n := int64(h.PayloadLen)
					snappy := h.Flags&segment.FlagSnappy != 0
					at := func(i int64) int64 {
						if snappy {
							return -1 // the whole record is verified: any byte of it fails
						}
						return int64(h.Addr) + i
					}
					targets = append(targets,
						target{"header", rec + 9, -1},
						target{"first block", pay + 17, at(17)},
						target{"middle block", pay + n/2, at(n / 2)},
						target{"last block", pay + n - 1, at(n - 1)},
						target{"block checksums", pay + n + 1, -1})
					if snappy {
						targets = append(targets, target{"compressed payload", pay + n/3, int64(h.Addr)})
					}
				}
				require.NoError(t, sc.Err())
				require.NotEmpty(t, targets)
				if compress {
					require.Equal(t, "compressed payload", targets[len(targets)-1].what, "the data compressed")
				}
				for _, tg := range targets {
					st := base.Clone(1)
					require.NoError(t, st.Corrupt(segName("r", 1), tg.pos))
					v, err := Open(st, "r", Options{ReadOnly: true})
					require.NoError(t, err, tg.what)
					what := fmt.Sprintf("%s at %d", tg.what, tg.pos)
					check := func(off, n int64) error {
						got := make([]byte, n)
						err := v.ReadAt(got, off)
						if err != nil {
							var ce *CorruptionError
							require.True(t, errors.As(err, &ce), "%s: read %d+%d: %v", what, off, n, err)
							return err
						}
						require.True(t, bytes.Equal(got, want[off:off+n]), "%s: read %d+%d returned wrong data", what, off, n)
						return nil
					}
					for off := int64(0); off < volSize; off += 4096 {
						err := check(off, 4096)
						if tg.addr >= 0 && off <= tg.addr && tg.addr < off+4096 {
							require.Error(t, err, "%s: the read of the damaged block must fail", what)
						}
					}
					for i := 0; i < 50; i++ {
						off := rng.Int63n(volSize - 1)
						check(off, 1+rng.Int63n(min(volSize-off, 200<<10)))
					}
					if tg.addr >= 0 {
						check(max(0, tg.addr-5000), 9000) // unaligned, across the damage
					}
					require.NoError(t, v.Close())
				}
			})
		}
	}
}

// TestModelWithBitRot reads a model volume through a store whose reads
// come back with a flipped bit now and then: no read ever returns bytes
// that differ from the model without an error, and errors are corruption.
func TestModelWithBitRot(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
			rng := rand.New(rand.NewSource(5))
			st := objstore.NewMemStore(false, 9)
			const size = 2 << 20
			require.NoError(t, Create(st, "b", Config{Size: size, SegmentSize: 1 << 20, Compress: compress}))
			v := openChecked(t, st, "b", Options{})
			model := make([]byte, size)
			for i := 0; i < 300; i++ {
				op := randomOp(rng, size)
				require.NoError(t, op.applyVolume(v))
				op.applyModel(model)
			}
			require.NoError(t, v.Close())
			v = openChecked(t, st, "b", Options{ReadOnly: true})
			st.FlipBitsOnRead(0.05)
			failed := 0
			for i := 0; i < 2000; i++ {
				off := rng.Int63n(size)
				n := 1 + rng.Int63n(min(size-off, 128<<10))
				got := make([]byte, n)
				if err := v.ReadAt(got, off); err != nil {
					var ce *CorruptionError
					require.True(t, errors.As(err, &ce), "read %d+%d: %v", off, n, err)
					failed++
					continue
				}
				require.True(t, bytes.Equal(got, model[off:off+n]), "read %d+%d returned wrong data", off, n)
			}
			st.FlipBitsOnRead(0)
			t.Logf("%d of 2000 reads failed their checksum; none returned wrong data", failed)
			require.Greater(t, failed, 20, "the fault must have hit")
			require.EqualValues(t, failed, v.ChecksumErrors())
			require.NoError(t, v.Close())
		})
	}
}

// TestOldRecordsAreVerifiedWhole: a record written before block checksums
// (versions 1 and 2) has one checksum over all of it, so a read of part of
// it reads and verifies the whole record.
func TestOldRecordsAreVerifiedWhole(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	require.NoError(t, Create(st, "o", Config{Size: 1 << 20, SegmentSize: 1 << 20}))
	v := openChecked(t, st, "o", Options{ReadOnly: true})
	payload := make([]byte, 64<<10)
	rand.New(rand.NewSource(1)).Read(payload)
	// A version 1 data record, as hlfs wrote them before version 3.
	rec := make([]byte, segment.HeaderSize, segment.HeaderSize+len(payload))
	binary.LittleEndian.PutUint32(rec[0:], segment.Magic)
	rec[4], rec[5] = 1, byte(segment.TypeData)
	binary.LittleEndian.PutUint32(rec[16:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(rec[20:], uint32(len(payload)))
	crc := crc32.Update(0, crc32.MakeTable(crc32.Castagnoli), rec[:28])
	binary.LittleEndian.PutUint32(rec[28:], crc32.Update(crc, crc32.MakeTable(crc32.Castagnoli), payload))
	rec = append(rec, payload...)
	const seq = 0xff
	obj := segment.AppendSegmentHeader(nil, segment.SegmentHeader{VolumeUID: v.sb.uid, Seq: seq})
	payOff := len(obj) + segment.HeaderSize
	obj = append(obj, rec...)
	require.NoError(t, objstore.WriteAll(st, segName("o", seq), obj))
	e := blockmap.Extent{Off: 8192, Length: 4096, Seq: seq, PayOff: uint32(payOff), PayLen: uint32(len(payload)), Skip: 8192}
	got := make([]byte, 4096)
	require.NoError(t, v.readExtent(got, e))
	require.Equal(t, payload[8192:12288], got)
	// Damage far from the bytes read: the whole record's checksum fails.
	require.NoError(t, st.Corrupt(segName("o", seq), int64(payOff+60000)))
	v.readers.close()
	v.readers = newSegmentReaders(st, v.lin, newAttemptMap())
	err := v.readExtent(got, e)
	var ce *CorruptionError
	require.True(t, errors.As(err, &ce), "got %v", err)
	require.EqualValues(t, 1, v.ChecksumErrors())
	require.NoError(t, v.Close())
}

// TestChecksumCacheIsNotPoisoned: a read whose checksums came back damaged
// (a flip on the way) fails, and the next read of the record, with the
// store healthy, succeeds: damaged checksums are not kept.
func TestChecksumCacheIsNotPoisoned(t *testing.T) {
	st := objstore.NewMemStore(false, 3)
	require.NoError(t, Create(st, "c", Config{Size: 1 << 20, SegmentSize: 1 << 20}))
	v := openChecked(t, st, "c", Options{})
	want := bytes.Repeat([]byte{1, 2, 3}, 64<<10/3+1)[:64<<10]
	require.NoError(t, v.WriteAt(want, 0, false))
	require.NoError(t, v.Close())
	v = openChecked(t, st, "c", Options{ReadOnly: true})
	got := make([]byte, 4096)
	st.FlipBitsOnRead(1) // every read is hit: data or checksums
	require.Error(t, v.ReadAt(got, 8192))
	st.FlipBitsOnRead(0)
	for off := int64(0); off < 64<<10; off += 4096 {
		require.NoError(t, v.ReadAt(got, off), "offset %d", off)
		require.Equal(t, want[off:off+4096], got)
	}
	require.NoError(t, v.Close())
}
