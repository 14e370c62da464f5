package lfs

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
	"github.com/stretchr/testify/require"
)

// TestScrubFindsDamageAndWhoReadsIt damages a block that the live volume
// and a snapshot share and one that only the snapshot reads: scrub reports
// each, block-exact, with the volume ranges that read it; a clean volume
// scrubs clean, every record once.
func TestScrubFindsDamageAndWhoReadsIt(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	require.NoError(t, Create(st, "v", Config{Size: 2 << 20, SegmentSize: 4 << 20}))
	v := openChecked(t, st, "v", Options{CheckpointInterval: -1})
	old := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7}, (1<<20)/7+1)[:1<<20]
	require.NoError(t, v.WriteAt(old, 0, false)) // 16 records of 64 KiB
	require.NoError(t, v.CreateSnapshot("s1"))
	require.NoError(t, v.WriteAt(bytes.Repeat([]byte{9}, 64<<10), 0, false)) // live overwrites record 0
	rep, err := v.Scrub(ScrubOptions{})
	require.NoError(t, err)
	require.True(t, rep.OK())
	require.EqualValues(t, 17, rep.Records, "16 records s1 reads, 15 of them shared, and the new one")
	require.EqualValues(t, 17*(segment.HeaderSize+(64<<10)+16*4), rep.BytesVerified)
	require.NoError(t, v.Close())

	// Record 0 (only s1 reads it) at payload byte 5000 (block 1), record 3
	// (both read it) at payload byte 64K-1 (block 15).
	recLen := int64(segment.HeaderSize + (64 << 10) + 16*4)
	pay := func(i int64) int64 { return segment.SegmentHeaderLen + i*recLen + segment.HeaderSize }
	require.NoError(t, st.Corrupt(segName("v", 1), pay(0)+5000))
	require.NoError(t, st.Corrupt(segName("v", 1), pay(3)+(64<<10)-1))
	v = openChecked(t, st, "v", Options{CheckpointInterval: -1})
	var lastDone, lastTotal int64
	rep, err = v.Scrub(ScrubOptions{Progress: func(done, total int64) {
		require.LessOrEqual(t, done, total)
		lastDone, lastTotal = done, total
	}})
	require.NoError(t, err)
	require.Equal(t, lastTotal, lastDone, "progress reaches the total")
	require.EqualValues(t, 17*recLen, lastTotal)
	require.Len(t, rep.Damaged, 2, "%+v", rep.Damaged)
	d0, d3 := rep.Damaged[0], rep.Damaged[1]
	require.Equal(t, segName("v", 1), d0.Object)
	require.Equal(t, pay(0)+4096, d0.Offset)
	require.EqualValues(t, 4096, d0.Length)
	require.Equal(t, []DamagedRead{{"v@s1", 4096, 4096}}, d0.ReadBy)
	require.Equal(t, pay(3)+15*4096, d3.Offset)
	require.ElementsMatch(t, []DamagedRead{{"v", 3<<16 + 15*4096, 4096}, {"v@s1", 3<<16 + 15*4096, 4096}}, d3.ReadBy)
	// What scrub reports is what reads hit.
	got := make([]byte, 4096)
	require.Error(t, v.ReadAt(got, 3<<16+15*4096))
	require.NoError(t, v.ReadAt(got, 3<<16+14*4096))
	require.EqualValues(t, 3, v.ChecksumErrors(), "two found by scrub, one by the read")

	// The rate bounds it.
	start := time.Now()
	_, err = v.Scrub(ScrubOptions{Rate: 8 << 20})
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond, "1.1 MiB at 8 MiB/s")
	require.NoError(t, v.Close())
}

// TestBackgroundScrubLogsDamage: the scrubber serve starts finds damage on
// its own and logs each damaged range.
func TestBackgroundScrubLogsDamage(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	require.NoError(t, Create(st, "b", Config{Size: 1 << 20, SegmentSize: 1 << 20}))
	v := openChecked(t, st, "b", Options{})
	require.NoError(t, v.WriteAt(bytes.Repeat([]byte{3}, 64<<10), 0, false))
	require.NoError(t, v.Close())
	require.NoError(t, st.Corrupt(segName("b", 1), segment.SegmentHeaderLen+segment.HeaderSize+100))
	var logs syncBuffer
	v = openChecked(t, st, "b", Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	v.StartScrubber(20*time.Millisecond, 0)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "scrub found damage") }, 5*time.Second, 10*time.Millisecond)
	require.Contains(t, logs.String(), "scrub: damaged data")
	require.Contains(t, logs.String(), "offset="+strconv.Itoa(segment.SegmentHeaderLen+segment.HeaderSize))
	require.NoError(t, v.Close())
}

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
