package lfs

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
	"github.com/stretchr/testify/require"
)

// scanRecords returns the offsets of the records of segment seq after its
// header, and the offset where they end.
func scanRecords(t *testing.T, buf []byte, seq uint64) ([]int, int) {
	t.Helper()
	var offs []int
	sc := segment.NewScanner(buf, segment.SegmentHeaderLen, seq)
	for sc.Next() {
		require.EqualValues(t, segment.VersionSeeded, sc.Header().Version)
		offs = append(offs, sc.Offset())
	}
	require.NoError(t, sc.Err())
	return offs, sc.Offset()
}

// TestStaleTailOfAReusedFileIsNotReplayed: a segment written into the
// reused file of a deleted segment can, after a crash, hold that segment's
// records after its own valid end, or, when the crash came before its
// header reached the disk, nothing but the old segment. Those records are
// valid in their own segment but not in the new one (their checksums are
// seeded with the old seq): recovery ends the log where the new segment's
// records end, replays none of them and reports no corruption, and the
// next writer goes on from there. The stale bytes here are those of an
// older segment of the same volume, the worst case: same uid, same
// addresses.
func TestStaleTailOfAReusedFileIsNotReplayed(t *testing.T) {
	simulateOwnDeath(t)
	const size = 2 << 20
	base := objstore.NewMemStore(false, 1)
	require.NoError(t, Create(base, "r", Config{Size: size, SegmentSize: 1 << 20}))
	v := openChecked(t, base.Session(), "r", Options{CheckpointInterval: -1})
	model := make([]byte, size)
	rng := rand.New(rand.NewSource(7))
	for i := range 300 { // segment 1 full, segment 2 partly
		p := model[i*4096 : (i+1)*4096]
		rng.Read(p)
		require.NoError(t, v.WriteAt(p, int64(i)*4096, false))
	}
	require.NoError(t, v.Flush())
	base.Crash() // nothing after the flush: every record is durable
	seg1, err := readObject(base, segName("r", 1))
	require.NoError(t, err)
	seg2, err := readObject(base, segName("r", 2))
	require.NoError(t, err)
	recs1, end1 := scanRecords(t, seg1, 1)
	recs2, end2 := scanRecords(t, seg2, 2)
	require.Equal(t, len(seg1), end1)
	require.Equal(t, len(seg2), end2)
	require.Greater(t, len(seg1)-len(seg2), 64<<10, "segment 1 has more to leave behind")

	// What the volume reads without segment 2: the oracle when segment 2's
	// header never reached the disk.
	only1 := base.Clone(2)
	require.NoError(t, only1.Remove(segName("r", 2)))
	v1 := openChecked(t, only1, "r", Options{})
	want1 := make([]byte, size)
	require.NoError(t, v1.ReadAt(want1, 0))
	require.NoError(t, v1.Close())
	require.NotEqual(t, model, want1)
	require.Equal(t, model[:len(recs1)*4096], want1[:len(recs1)*4096], "segment 1 holds the first writes")

	for _, tc := range []struct {
		name  string
		seg2  []byte // the object of segment 2 after the crash
		want  []byte
		recs  int         // records replayed
		end   segment.Pos // where the log ends
		kept2 bool        // segment 2 stays in the log
	}{
		{"the new segment over the start of the old one", append(bytes.Clone(seg2), seg1[len(seg2):]...),
			model, len(recs1) + len(recs2), segment.Pos{Seq: 2, Off: int64(end2)}, true},
		{"the old segment's records from a record boundary", append(bytes.Clone(seg2), seg1[recs1[5]:]...),
			model, len(recs1) + len(recs2), segment.Pos{Seq: 2, Off: int64(end2)}, true},
		{"the old segment from its header on", append(bytes.Clone(seg2), seg1...),
			model, len(recs1) + len(recs2), segment.Pos{Seq: 2, Off: int64(end2)}, true},
		{"nothing of the new segment", bytes.Clone(seg1),
			want1, len(recs1), segment.Pos{Seq: 1, Off: int64(end1)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := base.Clone(3)
			require.NoError(t, replaceObject(st, segName("r", 2), tc.seg2))
			v := openChecked(t, st, "r", Options{CheckpointInterval: -1})
			require.Equal(t, tc.recs, v.stats.records, "no stale record is replayed")
			require.Equal(t, tc.end, v.lw.end(), "the log ends where the new segment's records end")
			got := make([]byte, size)
			require.NoError(t, v.ReadAt(got, 0))
			require.True(t, bytes.Equal(tc.want, got), "the volume reads what was flushed")
			require.Zero(t, v.ChecksumErrors())
			segs, err := listSegments(st, "r")
			require.NoError(t, err)
			if tc.kept2 {
				require.Equal(t, []uint64{1, 2}, segs)
			} else {
				require.Equal(t, []uint64{1}, segs, "segment 2 holds no header of its own: the log ends before it")
			}

			// The next writer goes on after the end; its segment starts
			// where the log ended.
			p := bytes.Repeat([]byte{0xa5}, 4096)
			require.NoError(t, v.WriteAt(p, 4096, true))
			want := bytes.Clone(tc.want)
			copy(want[4096:], p)
			next := tc.end.Seq + 1
			seg, err := readObject(st, segName("r", next))
			require.NoError(t, err)
			sh, err := segment.DecodeSegmentHeader(seg, next)
			require.NoError(t, err)
			require.Equal(t, tc.end, segment.Pos{Seq: sh.PrevSeq, Off: int64(sh.PrevEnd)})
			require.NoError(t, v.Close())
			v = openChecked(t, st, "r", Options{})
			require.NoError(t, v.ReadAt(got, 0))
			require.True(t, bytes.Equal(want, got), "after the next writer and a restart")
			require.NoError(t, v.Close())
			// fsck knows stale bytes from damage (their records' seq hint
			// names an earlier segment), and a file that held nothing of its
			// new segment is not kept in lost+found.
			rep, err := Fsck(st, "r", nil)
			require.NoError(t, err)
			require.True(t, rep.OK(), "fsck: %v", rep.Problems)
		})
	}
}
