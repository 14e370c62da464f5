package lfs

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// TestStoreOutageAbandonsAndRewrites fails every write-path store
// operation for a while (as a DataNode pipeline failure or a NameNode
// restart would): flushes fail cleanly meanwhile, writes go on in memory,
// and once the store is back the segment is written again to a new attempt
// object, the failed one is removed, and nothing acknowledged is lost.
func TestStoreOutageAbandonsAndRewrites(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		st := objstore.NewMemStore(noSync, 1)
		require.NoError(t, Create(st, "o", Config{Size: 4 << 20, SegmentSize: 1 << 20}))
		v := openChecked(t, st, "o", Options{CheckpointInterval: -1, StoreRetry: -1})
		model := make([]byte, 4<<20)
		write := func(i int) {
			p := bytes.Repeat([]byte{byte(i)}, 8192)
			require.NoError(t, v.WriteAt(p, int64(i%400)*8192, false))
			copy(model[(i%400)*8192:], p)
		}
		for i := 1; i <= 20; i++ {
			write(i)
		}
		require.NoError(t, v.Flush())
		var down atomic.Bool
		down.Store(true)
		st.SetInjector(func(op objstore.Op, name string) error {
			if down.Load() && (op == objstore.OpWrite || op == objstore.OpSync || op == objstore.OpClose) {
				return objstore.ErrInjected
			}
			return nil
		})
		for i := 21; i <= 60; i++ {
			write(i)
		}
		err := v.Flush()
		require.ErrorIs(t, err, objstore.ErrInjected, "noSync=%v: a flush during the outage fails", noSync)
		got := make([]byte, len(model))
		require.NoError(t, v.ReadAt(got, 0))
		require.True(t, bytes.Equal(got, model), "reads are served from memory during the outage")
		down.Store(false)
		for i := 61; i <= 200; i++ { // crosses into the next segment
			write(i)
		}
		require.NoError(t, v.Flush(), "noSync=%v: the store is back", noSync)
		require.NoError(t, v.Close())
		names, err := st.List(segDir("o"))
		require.NoError(t, err)
		retried := false
		for _, n := range names {
			retried = retried || strings.Contains(n, ".")
		}
		require.True(t, retried, "noSync=%v: a segment was written again under a new attempt: %v", noSync, names)
		seqs, attempts, err := segmentAttempts(st, "o")
		require.NoError(t, err)
		for _, seq := range seqs {
			require.Len(t, attempts[seq], 1, "noSync=%v: the failed attempt of segment %d was removed", noSync, seq)
		}
		v = openChecked(t, st, "o", Options{})
		require.NoError(t, v.ReadAt(got, 0))
		require.True(t, bytes.Equal(got, model), "noSync=%v: nothing lost after reopen", noSync)
		require.NoError(t, v.Close())
		rep, err := Fsck(st, "o", nil)
		require.NoError(t, err)
		require.True(t, rep.OK(), "%v", rep.Problems)
	}
}

// TestRecoveryPicksTheAttemptWithMostRecords: after a crash both the
// failed attempt and its rewrite may exist; the one with more valid records
// wins and the other is removed.
func TestRecoveryPicksTheAttemptWithMostRecords(t *testing.T) {
	simulateOwnDeath(t)
	st := objstore.NewMemStore(false, 1)
	require.NoError(t, Create(st, "a", Config{Size: 1 << 20, SegmentSize: 1 << 20}))
	v := openChecked(t, st.Session(), "a", Options{CheckpointInterval: -1})
	for i := 0; i < 10; i++ {
		require.NoError(t, v.WriteAt(bytes.Repeat([]byte{byte(i + 1)}, 4096), int64(i)*4096, false))
	}
	require.NoError(t, v.Flush())
	buf := v.lw.segmentBytes(1)
	// A second attempt holding only part of the records, as a rewrite cut
	// short by a crash would.
	w, err := st.Create(segObjName("a", 1, 1))
	require.NoError(t, err)
	_, err = w.Write(buf[:len(buf)/2])
	require.NoError(t, err)
	require.NoError(t, w.Sync())
	st.Crash()
	v = openChecked(t, st.Session(), "a", Options{})
	got := make([]byte, 4096)
	require.NoError(t, v.ReadAt(got, 9*4096))
	require.Equal(t, bytes.Repeat([]byte{10}, 4096), got, "the longer attempt 0 won")
	require.NoError(t, v.Close())
	_, attempts, err := segmentAttempts(st, "a")
	require.NoError(t, err)
	require.Equal(t, []int{0}, attempts[1], "the losing attempt was removed")
}

// TestFencedWhenAnotherWriterTakesOver: a writer whose next segment name is
// taken (another server recovered the volume and writes it) stops writing
// for good.
func TestFencedWhenAnotherWriterTakesOver(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	require.NoError(t, Create(st, "f", Config{Size: 1 << 20, SegmentSize: 1 << 20}))
	v := openChecked(t, st, "f", Options{CheckpointInterval: -1})
	require.NoError(t, v.WriteAt([]byte{1}, 0, true))
	// The other writer, having recovered segment 1, creates segment 2.
	w, err := st.Create(segName("f", 2))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	v.lw.sealActive(v.lw.mu.segs[0])
	require.NoError(t, v.WriteAt([]byte{2}, 1, false))
	err = v.Flush()
	require.True(t, errors.Is(err, ErrFenced), "got %v", err)
	require.ErrorIs(t, v.WriteAt([]byte{3}, 2, false), ErrFenced)
	require.Error(t, v.Close())
}

// TestLeaseTakeoverFencesTheZombie: an owner on another host that stopped
// renewing (paused, not dead) loses the volume once its lease ran out; the
// new owner writes, and the zombie's next flush fails instead of
// acknowledging writes that nobody will ever read.
func TestLeaseTakeoverFencesTheZombie(t *testing.T) {
	st := objstore.NewMemStore(true, 1)
	require.NoError(t, Create(st, "z", Config{Size: 1 << 20, SegmentSize: 1 << 20}))
	t.Setenv("HLFS_HOSTNAME", "host-a")
	zombie := openChecked(t, st, "z", Options{Lease: 2 * time.Second, CheckpointInterval: -1})
	require.NoError(t, zombie.WriteAt(bytes.Repeat([]byte{1}, 4096), 0, true))
	close(zombie.stopBackground) // the process pauses: no more renewals
	zombie.backgroundWG.Wait()

	t.Setenv("HLFS_HOSTNAME", "host-b")
	_, err := Open(st, "z", Options{Lease: time.Minute})
	require.ErrorIs(t, err, ErrInUse, "the lease still holds")
	time.Sleep(2100 * time.Millisecond)
	v, err := Open(st, "z", Options{Lease: time.Minute, CheckpointInterval: -1})
	require.NoError(t, err, "the lease ran out")
	require.NoError(t, v.WriteAt(bytes.Repeat([]byte{2}, 4096), 4096, true))

	require.NoError(t, v.checkpoint())
	ckpts, err := listCheckpoints(st, "z")
	require.NoError(t, err)
	// The zombie wakes and its background work goes on: a checkpoint (which
	// removes older ones) is refused before it touches the store.
	require.ErrorIs(t, zombie.checkpoint(), ErrFenced)
	after, err := listCheckpoints(st, "z")
	require.NoError(t, err)
	require.Equal(t, ckpts, after, "the zombie removed or added no checkpoint")
	err = zombie.WriteAt(bytes.Repeat([]byte{3}, 4096), 0, true)
	require.True(t, errors.Is(err, ErrFenced), "the zombie's FUA write must not be acknowledged: %v", err)
	require.ErrorIs(t, zombie.Flush(), ErrFenced)
	require.NoError(t, v.Close())
	v = openChecked(t, st, "z", Options{})
	got := make([]byte, 8192)
	require.NoError(t, v.ReadAt(got, 0))
	require.Equal(t, bytes.Repeat([]byte{1}, 4096), got[:4096], "the zombie's late write is not there")
	require.Equal(t, bytes.Repeat([]byte{2}, 4096), got[4096:])
	require.NoError(t, v.Close())
}

// TestFlushRidesOutAShortOutage: a flush during a store outage shorter than
// StoreRetry stalls and then succeeds instead of failing.
func TestFlushRidesOutAShortOutage(t *testing.T) {
	st := objstore.NewMemStore(true, 1)
	require.NoError(t, Create(st, "r", Config{Size: 1 << 20, SegmentSize: 1 << 20}))
	v := openChecked(t, st, "r", Options{CheckpointInterval: -1, StoreRetry: 5 * time.Second})
	var down atomic.Bool
	down.Store(true)
	st.SetInjector(func(op objstore.Op, name string) error {
		if down.Load() && op != objstore.OpList && op != objstore.OpOpen {
			return fmt.Errorf("%w: %w", objstore.ErrInjected, objstore.ErrTransient)
		}
		return nil
	})
	time.AfterFunc(300*time.Millisecond, func() { down.Store(false) })
	start := time.Now()
	require.NoError(t, v.WriteAt(bytes.Repeat([]byte{7}, 4096), 0, true), "the FUA write stalls, then succeeds")
	require.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond)
	require.NoError(t, v.Close())
	v = openChecked(t, st, "r", Options{})
	got := make([]byte, 4096)
	require.NoError(t, v.ReadAt(got, 0))
	require.Equal(t, bytes.Repeat([]byte{7}, 4096), got)
	require.NoError(t, v.Close())
}

// TestHandRemovedLockNeverReusesAnEpoch: after the owner lock was removed
// by hand, a second owner takes a higher epoch than any writer of the log
// (from the segment headers) and waits a lease, so the first owner's next
// renewal fences it before the second writes; a first owner that had not
// written yet (same epoch) is fenced by the token in its lock object.
func TestHandRemovedLockNeverReusesAnEpoch(t *testing.T) {
	removeLocks := func(st objstore.Store, vol string) {
		names, err := st.List(ownerDir(vol))
		require.NoError(t, err)
		for _, n := range names {
			require.NoError(t, st.Remove(ownerDir(vol)+"/"+n))
		}
	}
	t.Run("first owner wrote", func(t *testing.T) {
		st := objstore.NewMemStore(true, 1)
		require.NoError(t, Create(st, "e", Config{Size: 1 << 20, SegmentSize: 1 << 20}))
		t.Setenv("HLFS_HOSTNAME", "host-a")
		a := openChecked(t, st, "e", Options{Lease: 900 * time.Millisecond, CheckpointInterval: -1})
		require.NoError(t, a.WriteAt(bytes.Repeat([]byte{1}, 4096), 0, true))
		removeLocks(st, "e")
		t.Setenv("HLFS_HOSTNAME", "host-b")
		start := time.Now()
		b := openChecked(t, st, "e", Options{Lease: 900 * time.Millisecond, CheckpointInterval: -1})
		require.Equal(t, uint64(2), b.owner.epoch, "the log's epoch 1 is never reused")
		require.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "the new owner waits a lease")
		require.ErrorIs(t, a.WriteAt(bytes.Repeat([]byte{3}, 4096), 0, true), ErrFenced,
			"the first owner must not acknowledge after the second took over")
		require.NoError(t, b.WriteAt(bytes.Repeat([]byte{2}, 4096), 4096, true))
		require.NoError(t, b.Close())
		v := openChecked(t, st, "e", Options{})
		got := make([]byte, 8192)
		require.NoError(t, v.ReadAt(got, 0))
		require.Equal(t, bytes.Repeat([]byte{1}, 4096), got[:4096])
		require.Equal(t, bytes.Repeat([]byte{2}, 4096), got[4096:])
		require.NoError(t, v.Close())
	})
	t.Run("first owner had not written", func(t *testing.T) {
		st := objstore.NewMemStore(true, 1)
		require.NoError(t, Create(st, "e", Config{Size: 1 << 20, SegmentSize: 1 << 20}))
		t.Setenv("HLFS_HOSTNAME", "host-a")
		a := openChecked(t, st, "e", Options{Lease: 600 * time.Millisecond, CheckpointInterval: -1})
		removeLocks(st, "e")
		t.Setenv("HLFS_HOSTNAME", "host-b")
		b := openChecked(t, st, "e", Options{Lease: time.Minute, CheckpointInterval: -1})
		require.Equal(t, a.owner.epoch, b.owner.epoch, "nothing in the store knows epoch %d", a.owner.epoch)
		require.Eventually(t, func() bool { return errors.Is(a.Flush(), ErrFenced) }, 5*time.Second, 50*time.Millisecond,
			"a renewal finds another token at its epoch and fences")
		require.NoError(t, b.WriteAt(bytes.Repeat([]byte{2}, 4096), 0, true))
		require.NoError(t, b.Close())
	})
}

// TestFullDiskLeavesNoLitter: while every write fails (a full disk), the
// log writer retries without leaving an object per retry, the owner's
// renewal leaves no temporary lock objects, and the cleaner's view skips
// segments whose objects do not exist yet; info counts segments as du does.
func TestFullDiskLeavesNoLitter(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	require.NoError(t, Create(st, "f", Config{Size: 4 << 20, SegmentSize: 1 << 20}))
	v := openChecked(t, st, "f", Options{Lease: 300 * time.Millisecond, CheckpointInterval: -1, StoreRetry: -1})
	require.NoError(t, v.WriteAt(bytes.Repeat([]byte{1}, 4096), 0, true))
	var full atomic.Bool
	full.Store(true)
	st.SetInjector(func(op objstore.Op, name string) error {
		if full.Load() && (op == objstore.OpWrite || op == objstore.OpSync) {
			return fmt.Errorf("%w: no space left on device", objstore.ErrInjected)
		}
		return nil
	})
	for i := 1; i < 8; i++ {
		_ = v.WriteAt(bytes.Repeat([]byte{byte(i)}, 64<<10), int64(i)<<16, false)
		require.Error(t, v.Flush(), "the disk is full")
	}
	time.Sleep(400 * time.Millisecond) // a renewal or two fail meanwhile
	owners, err := st.List(ownerDir("f"))
	require.NoError(t, err)
	require.Len(t, owners, 1, "no temporary lock objects left: %v", owners)
	segs, err := st.List(segDir("f"))
	require.NoError(t, err)
	require.LessOrEqual(t, len(segs), 2, "no object per failed retry: %v", segs)
	_, err = v.anythingToClean(GCOptions{})
	require.NoError(t, err, "segments without objects yet are not the cleaner's")

	full.Store(false)
	require.Eventually(t, func() bool { return v.Flush() == nil }, 10*time.Second, 20*time.Millisecond, "the flush succeeds once space is back")
	require.NoError(t, v.Close())
	info, err := Stat(st, "f")
	require.NoError(t, err)
	u, err := DiskUsage(st, "f")
	require.NoError(t, err)
	require.Equal(t, u.Segments, info.Segments, "info and du count the same segments")
}
