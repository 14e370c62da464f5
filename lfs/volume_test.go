package lfs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
	"github.com/stretchr/testify/require"
)

func newTestVolume(t *testing.T, st objstore.Store, name string, size int64) *Volume {
	t.Helper()
	require.NoError(t, Create(st, name, Config{Size: size, SegmentSize: 1 << 20}))
	return openChecked(t, st, name, Options{})
}

// openChecked opens a volume with its full invariant check (Volume.Check)
// run when it is closed, or when the test ends if it is still open then:
// every engine test that opens a volume this way ends with the check.
func openChecked(t testing.TB, st objstore.Store, name string, opts Options) *Volume {
	t.Helper()
	opts.beforeClose = func(v *Volume) { requireCheck(t, v, "at Close") }
	v, err := Open(st, name, opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		if v.checkOpen(false) == nil {
			requireCheck(t, v, "at the end of the test")
		}
	})
	return v
}

// requireCheck fails the test if v.Check finds a problem.
func requireCheck(t testing.TB, v *Volume, when string) {
	if err := v.Check(); err != nil {
		t.Errorf("Check %s: %v", when, err)
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "vm1", "A.b_c-d", strings.Repeat("x", 128)} {
		require.NoError(t, ValidateName(ok), ok)
	}
	for _, bad := range []string{"", "..", ".a", "-a", "a/b", "../x", "a@s", strings.Repeat("x", 129), "a b", "é"} {
		err := ValidateName(bad)
		require.ErrorIs(t, err, ErrInvalidName, bad)
		require.Contains(t, err.Error(), "A-Z a-z 0-9")
	}
}

func TestCreateValidatesConfig(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	for _, cfg := range []Config{
		{Size: 0}, {Size: -4096}, {Size: 4095}, {Size: 1 << 20, BlockSize: 1000},
		{Size: 1 << 20, BlockSize: 256}, {Size: 1 << 20, SegmentSize: 1000},
	} {
		require.ErrorIs(t, Create(st, "v", cfg), ErrInvalidConfig, "%+v", cfg)
	}
	require.NoError(t, Create(st, "v", Config{Size: 1 << 20}))
	require.ErrorIs(t, Create(st, "v", Config{Size: 1 << 20}), ErrExists)
	_, err := Open(st, "nope", Options{})
	require.ErrorIs(t, err, ErrNotFound)
}

func TestThinVolumeStoresAlmostNothing(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	v := newTestVolume(t, st, "big", 10<<40) // 10 TiB
	p := make([]byte, 1<<20)
	require.NoError(t, v.ReadAt(p, 5<<40))
	require.Equal(t, make([]byte, 1<<20), p)
	require.NoError(t, v.WriteAt(make([]byte, 1<<20), 1<<40, true)) // zeros: a hole
	require.NoError(t, v.Close())
	info, err := Stat(st, "big")
	require.NoError(t, err)
	require.Less(t, info.BytesStored, int64(8<<10), "a 10 TiB volume with only zeros written")
	require.Nil(t, info.Owner)
}

func TestOutOfRangeAndClosed(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	v := newTestVolume(t, st, "r", 1<<20)
	require.ErrorIs(t, v.WriteAt([]byte{1}, 1<<20, false), ErrOutOfRange)
	require.ErrorIs(t, v.ReadAt(make([]byte, 2), 1<<20-1), ErrOutOfRange)
	require.ErrorIs(t, v.Zero(-1, 1, true, false), ErrOutOfRange)
	require.NoError(t, v.WriteAt([]byte{1}, 1<<20-1, false))
	require.NoError(t, v.Close())
	require.ErrorIs(t, v.WriteAt([]byte{1}, 0, false), ErrClosed)
	require.ErrorIs(t, v.Close(), ErrClosed)
	ro := openChecked(t, st, "r", Options{ReadOnly: true})
	require.ErrorIs(t, ro.WriteAt([]byte{1}, 0, false), ErrReadOnly)
	b := make([]byte, 1)
	require.NoError(t, ro.ReadAt(b, 1<<20-1))
	require.Equal(t, byte(1), b[0])
	require.NoError(t, ro.Close())
}

func TestOwnerLock(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	v := newTestVolume(t, st, "o", 1<<20)
	_, err := Open(st, "o", Options{})
	var inUse *InUseError
	require.True(t, errors.As(err, &inUse), "second open: %v", err)
	require.ErrorIs(t, err, ErrInUse)
	require.Contains(t, err.Error(), fmt.Sprintf("pid %d", inUse.Owner.PID))
	require.ErrorIs(t, Remove(st, "o"), ErrInUse)
	require.ErrorIs(t, Resize(st, "o", 2<<20, false), ErrInUse)
	info, err := Stat(st, "o")
	require.NoError(t, err)
	require.NotNil(t, info.Owner)
	require.NoError(t, v.Close())

	// Clean release: the next owner gets a higher epoch.
	v = openChecked(t, st, "o", Options{})
	epoch := v.owner.epoch
	require.Greater(t, epoch, uint64(1))
	// A lock left by a dead process is taken over.
	simulateOwnDeath(t)
	v2 := openChecked(t, st, "o", Options{})
	require.Equal(t, epoch+1, v2.owner.epoch)
	require.NoError(t, v2.Close())
}

func TestProcessAliveOS(t *testing.T) {
	self := selfRecord(1, "", time.Minute)
	require.True(t, processAliveOS(self))
	gone := self
	gone.PID = 1 << 30 // beyond pid_max
	require.False(t, processAliveOS(gone))
	reused := self
	reused.PIDStart = "1"
	require.False(t, processAliveOS(reused), "same pid, other start time")
	other := gone
	other.Host = "another-host"
	require.True(t, processAliveOS(other), "a process on another host is alive while its lease holds")
	other.Renewed = time.Now().Add(-2 * time.Minute)
	require.False(t, processAliveOS(other), "a process on another host is gone once its lease ran out")
}

func TestListRemoveResize(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	for _, n := range []string{"b", "a"} {
		v := newTestVolume(t, st, n, 1<<20)
		require.NoError(t, v.WriteAt(bytes.Repeat([]byte{7}, 8192), 1<<20-8192, false))
		require.NoError(t, v.Close())
	}
	names, err := List(st)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, names)

	require.ErrorIs(t, Resize(st, "a", 512<<10, false), ErrShrink)
	require.NoError(t, Resize(st, "a", 2<<20, false))
	v := openChecked(t, st, "a", Options{})
	require.EqualValues(t, 2<<20, v.Size())
	p := make([]byte, 8192)
	require.NoError(t, v.ReadAt(p, 1<<20-8192))
	require.Equal(t, bytes.Repeat([]byte{7}, 8192), p, "growing keeps data")
	require.NoError(t, v.Close())

	require.NoError(t, Resize(st, "a", 1<<20-4096, true))
	require.NoError(t, Resize(st, "a", 2<<20, false))
	v = openChecked(t, st, "a", Options{})
	require.NoError(t, v.ReadAt(p, 1<<20-8192))
	require.Equal(t, bytes.Repeat([]byte{7}, 4096), p[:4096])
	require.Equal(t, make([]byte, 4096), p[4096:], "shrinking then growing reads zeros")
	require.NoError(t, v.Close())

	require.NoError(t, Remove(st, "b"))
	names, err = List(st)
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, names)
	all, err := st.List("b")
	require.NoError(t, err)
	require.Empty(t, all)
	require.ErrorIs(t, Remove(st, "b"), ErrNotFound)
}

// TestConcurrentWritersReadersFlushers runs writers on disjoint blocks with
// readers and flushers in parallel (run with -race); every block ends with
// its writer's last value.
func TestConcurrentWritersReadersFlushers(t *testing.T) {
	dir := t.TempDir()
	st, err := objstore.NewDirStore(dir)
	require.NoError(t, err)
	require.NoError(t, Create(st, "c", Config{Size: 8 << 20, SegmentSize: 1 << 20}))
	v := openChecked(t, st, "c", Options{CheckpointInterval: 2 << 20})
	const writers, perWriter = 8, 300
	last := make([][]byte, writers*16)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			for i := 0; i < perWriter; i++ {
				blk := w*16 + rng.Intn(16)
				p := make([]byte, 4096)
				rng.Read(p)
				if err := v.WriteAt(p, int64(blk)*4096, i%50 == 0); err != nil {
					t.Error(err)
					return
				}
				last[blk] = p
				if i%7 == 0 {
					got := make([]byte, 4096)
					if err := v.ReadAt(got, int64(blk)*4096); err != nil || !bytes.Equal(got, p) {
						t.Errorf("writer %d read back block %d: %v", w, blk, err)
						return
					}
				}
				if i%31 == 0 {
					if err := v.Flush(); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	require.NoError(t, v.Close())
	v = openChecked(t, st, "c", Options{})
	for blk, want := range last {
		if want == nil {
			continue
		}
		got := make([]byte, 4096)
		require.NoError(t, v.ReadAt(got, int64(blk)*4096))
		require.Equal(t, want, got, "block %d", blk)
	}
	require.NoError(t, v.Check())
	require.NoError(t, v.Close())
}

func TestAllocationReportsHolesAndData(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	v := newTestVolume(t, st, "a", 1<<20)
	require.NoError(t, v.WriteAt(bytes.Repeat([]byte{1}, 8192), 4096, false))
	require.NoError(t, v.WriteAt(bytes.Repeat([]byte{2}, 4096), 12288, false)) // adjacent: merges
	require.NoError(t, v.Zero(8192, 4096, false, false))                       // allocated zeros
	type run struct {
		n    int64
		hole bool
	}
	var runs []run
	require.NoError(t, v.Allocation(0, 1<<20, func(n int64, hole bool) error {
		runs = append(runs, run{n, hole})
		return nil
	}))
	require.Equal(t, []run{{4096, true}, {12288, false}, {1<<20 - 16384, true}}, runs)
	require.NoError(t, v.Close())
}

// TestSequentialWritesMakeOneExtentPerSegment: 4 KiB writes one after the
// other (QD1) extend one run extent per segment, through a snapshot, an
// overwrite in the middle, replay from the log and from a checkpoint, and
// a gc; the content and the books stay exact (openChecked checks).
func TestSequentialWritesMakeOneExtentPerSegment(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	const size = 8 << 20
	require.NoError(t, Create(st, "s", Config{Size: size, SegmentSize: 1 << 20}))
	v := openChecked(t, st, "s", Options{CheckpointInterval: -1})
	model := make([]byte, size)
	rng := rand.New(rand.NewSource(3))
	write := func(off, n int64) {
		for end := off + n; off < end; off += 4096 {
			p := make([]byte, 4096)
			rng.Read(p)
			require.NoError(t, v.WriteAt(p, off, false))
			copy(model[off:], p)
		}
	}
	extents := func() int {
		v.mu.RLock()
		defer v.mu.RUnlock()
		return v.mu.m.Len()
	}
	write(0, 4<<20)
	segs := 1 + (4<<20)/(1<<20-segment.SegmentHeaderLen)
	// One extent per segment the writes landed in (a segment holds a
	// little under 1 MiB of 4 KiB records).
	require.LessOrEqual(t, extents(), segs+1)
	require.GreaterOrEqual(t, extents(), 4)
	checkAgainstModel(t, v, model, rng)
	require.NoError(t, v.CreateSnapshot("s1"))
	snap := append([]byte(nil), model...)
	write(1<<20+8192, 64<<10) // splits one run in two
	write(4<<20, 1<<20)       // continues after the snapshot record: a new run
	checkAgainstModel(t, v, model, rng)
	n := extents()
	require.NoError(t, v.Flush())
	// Replay from the log alone makes the same runs.
	v.Abandon()
	v = openChecked(t, st, "s", Options{CheckpointInterval: -1})
	require.Equal(t, n, extents())
	checkAgainstModel(t, v, model, rng)
	require.NoError(t, v.Close())
	// And from a checkpoint (version 4: run extents).
	v = openChecked(t, st, "s", Options{CheckpointInterval: -1})
	require.Equal(t, n, extents())
	_, err := v.GC(GCOptions{MaxUtilization: 0.99})
	require.NoError(t, err)
	checkAgainstModel(t, v, model, rng)
	sv, err := v.SnapshotView("s1")
	require.NoError(t, err)
	got := make([]byte, size)
	require.NoError(t, sv.ReadAt(got, 0))
	require.True(t, bytes.Equal(snap, got), "snapshot content")
	srep, err := v.Scrub(ScrubOptions{})
	require.NoError(t, err)
	require.True(t, srep.OK())
	require.Greater(t, srep.Records, int64(1000), "scrub verifies each record of a run")
	require.NoError(t, v.Close())
	rep, err := Fsck(st, "s", nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "fsck: %v", rep.Problems)
}
