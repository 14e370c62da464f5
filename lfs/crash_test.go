package lfs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/membudget"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
	"github.com/stretchr/testify/require"
)

// simulateOwnDeath makes owner locks of this process count as stale, as they
// would after a real crash of the process.
func simulateOwnDeath(t *testing.T) {
	processAlive = func(OwnerRecord) bool { return false }
	t.Cleanup(func() { processAlive = processAliveOS })
}

// requirePrefixState checks that got is durable plus the first k pending ops
// for some k, where the op being applied at the crash may be partly there
// (its records are a prefix, so each of its bytes is old or new).
func requirePrefixState(t *testing.T, got, durable []byte, pending []modelOp) {
	t.Helper()
	state := append([]byte(nil), durable...)
	for k := 0; ; k++ {
		if bytes.Equal(got, state) {
			return
		}
		if k == len(pending) {
			break
		}
		next := append([]byte(nil), state...)
		pending[k].applyModel(next)
		lo, hi := pending[k].span()
		if bytes.Equal(got[:lo], state[:lo]) && bytes.Equal(got[hi:], state[hi:]) {
			ok := true
			for i := lo; i < hi; i++ {
				if got[i] != state[i] && got[i] != next[i] {
					ok = false
					break
				}
			}
			if ok {
				return
			}
		}
		state = next
	}
	i := 0
	for i < len(got) && got[i] == durable[i] {
		i++
	}
	t.Fatalf("recovered volume is not the flushed state plus a prefix of later writes (%d pending); first difference from flushed state at %d", len(pending), i)
}

// TestCrashAtRandomPoints crashes the memory store (dropping unsynced
// bytes, tearing the tail at random) at random moments of a random workload,
// with and without the background cleaner running flat out, and with a
// memory budget of one byte that seals a segment early at every append;
// after each reopen every flushed write is there and nothing is torn.
func TestCrashAtRandomPoints(t *testing.T) {
	simulateOwnDeath(t)
	for _, mode := range []struct {
		noSync, clean, seal bool
		seeds               int64
	}{{false, false, false, 4}, {true, false, false, 4}, {false, true, false, 4}, {true, true, false, 4},
		{false, false, true, 1}, {true, true, true, 1}} {
		noSync := mode.noSync
		for seed := int64(1); seed <= mode.seeds; seed++ {
			t.Run(fmt.Sprintf("nosync=%v/gc=%v/seal=%v/%d", noSync, mode.clean, mode.seal, seed), func(t *testing.T) {
				rng := rand.New(rand.NewSource(seed))
				st := objstore.NewMemStore(noSync, seed)
				const size = 2 << 20
				require.NoError(t, Create(st, "c", Config{Size: size, BlockSize: 512, Compress: seed%2 == 0, SegmentSize: 1 << 20}))
				opts := Options{CheckpointInterval: 512 << 10, StoreRetry: -1, Logger: testLogger(t)}
				if mode.seal {
					opts.Budget = membudget.New(1)
				}
				open := func() *Volume {
					v := openChecked(t, st.Session(), "c", opts)
					if mode.clean {
						v.StartCleaner(CleanerOptions{Interval: time.Millisecond, Trigger: 0.05, Rate: -1, MaxUtilization: 0.95, MinGarbage: 64 << 10})
					}
					return v
				}
				v := open()
				durable := make([]byte, size)
				var pending []modelOp
				for i := 0; i < 400; i++ {
					if mode.clean && i%20 == 0 {
						time.Sleep(5 * time.Millisecond) // the cleaner gets to run between crashes
					}
					switch r := rng.Intn(100); {
					case r < 4:
						st.Crash()
						_ = v.Close() // fails: the store crashed under it
						require.Zero(t, opts.Budget.Used(), "memory still held after Close")
						v = open()
						got := make([]byte, size)
						require.NoError(t, v.ReadAt(got, 0))
						requirePrefixState(t, got, durable, pending)
						require.NoError(t, v.Check())
						copy(durable, got)
						pending = nil
					case r < 12:
						require.NoError(t, v.Flush())
						for _, op := range pending {
							op.applyModel(durable)
						}
						pending = nil
					default:
						op := randomOp(rng, size)
						op.fua = false
						require.NoError(t, op.applyVolume(v))
						pending = append(pending, op)
					}
				}
				if mode.clean {
					// It has had every chance to clean by now.
					require.Eventually(t, func() bool {
						seqs, err := listSegments(st, "c")
						return err == nil && uint64(len(seqs)) < seqs[len(seqs)-1]
					}, 10*time.Second, 10*time.Millisecond, "the cleaner should have deleted segments")
				}
				require.NoError(t, v.Close())
				requireFsckAfterCrash(t, st, "c", "")
			})
		}
	}
}

// TestCrashAtEveryStoreOperation lets the store die (every operation fails
// from the k-th on, then unsynced bytes drop) for every k of a workload of
// writes, flushes, a checkpoint and a close, also with every write sealed
// early into a segment of its own (a memory budget of one byte); the
// reopened volume holds every write flushed before the failure.
func TestCrashAtEveryStoreOperation(t *testing.T) {
	simulateOwnDeath(t)
	workload := func(v *Volume, flushed func(step int)) {
		for step := 0; step < 12; step++ {
			p := bytes.Repeat([]byte{byte(step + 1)}, 40<<10)
			// Ten sequential 4 KiB writes: one run extent, partly
			// overwritten by the next step's.
			for i := 0; i < len(p); i += 4 << 10 {
				if v.WriteAt(p[i:i+4<<10], int64(step)*24<<10+int64(i), false) != nil {
					return
				}
			}
			if step%3 == 2 {
				if v.Flush() != nil {
					return
				}
				flushed(step)
			}
			if step == 7 && v.checkpoint() != nil {
				return
			}
		}
		if v.Close() == nil {
			flushed(11)
		}
	}
	expected := func(upto int) []byte {
		m := make([]byte, 1<<20)
		for step := 0; step <= upto; step++ {
			copy(m[step*24<<10:], bytes.Repeat([]byte{byte(step + 1)}, 40<<10))
		}
		return m
	}
	for _, mode := range []struct{ noSync, seal bool }{{false, false}, {true, false}, {true, true}} {
		t.Run(fmt.Sprintf("noSync=%v,seal=%v", mode.noSync, mode.seal), func(t *testing.T) {
			if !mode.seal {
				// Each mode crashes its own stores; -race time on two
				// cores. The seal mode changes appendWait, so it runs
				// alone (first: parallel subtests wait for the loop).
				t.Parallel()
			}
			noSync := mode.noSync
			for k := 1; ; k++ {
				st := objstore.NewMemStore(noSync, int64(k))
				require.NoError(t, Create(st, "e", Config{Size: 1 << 20, SegmentSize: 1 << 20}))
				dead := dieFrom(st, k)
				lastFlushed := -1
				opts := Options{CheckpointInterval: -1}
				if mode.seal {
					opts.Budget = membudget.New(1)
					// Once the store died, memory never comes back: each
					// later write waits this long, then fails.
					shortAppendWait(t)
				}
				v, err := Open(st.Session(), "e", opts)
				if err == nil {
					workload(v, func(step int) { lastFlushed = step })
					_ = v.Close()
				}
				st.SetInjector(nil)
				st.Crash()
				v, err = Open(st, "e", Options{})
				require.NoError(t, err, "noSync=%v k=%d", noSync, k)
				require.Zero(t, opts.Budget.Used(), "memory still held after Close")
				got := make([]byte, 1<<20)
				require.NoError(t, v.ReadAt(got, 0))
				if lastFlushed >= 0 {
					want := expected(lastFlushed)
					// Later unflushed writes may also have survived; flushed
					// bytes not overwritten later must match.
					for i := range got {
						if got[i] != want[i] && !writtenAfter(i, lastFlushed) {
							t.Fatalf("noSync=%v k=%d: byte %d = %d, want %d (flushed through step %d)", noSync, k, i, got[i], want[i], lastFlushed)
						}
					}
				}
				require.NoError(t, v.Check())
				require.NoError(t, v.Close())
				requireFsckAfterCrash(t, st, "e", fmt.Sprintf("noSync=%v k=%d", noSync, k))
				if !dead.Load() {
					require.Greater(t, k, 20, "the workload should take many store operations that change the store")
					t.Logf("noSync=%v seal=%v: crashed at each of %d store operations", noSync, mode.seal, k-1)
					break // the workload finished before the k-th operation
				}
			}
		})
	}
}

// shortAppendWait makes appends give up waiting for the store or for memory
// after 50 ms for the rest of the test.
func shortAppendWait(t *testing.T) {
	old := appendWait
	appendWait = 50 * time.Millisecond
	t.Cleanup(func() { appendWait = old })
}

// dieFrom makes every operation of st fail from the k-th operation that
// changes the store on (create, write, sync, close, persist, rename,
// remove), as a store that died would; the flag tells whether one did.
// Reads are not counted: dying before a read leaves the store as dying
// before the next change does (and a read of a dead store fails too).
func dieFrom(st *objstore.MemStore, k int) *atomic.Bool {
	var ops atomic.Int64
	var dead atomic.Bool
	st.SetInjector(func(op objstore.Op, name string) error {
		if dead.Load() {
			return objstore.ErrInjected
		}
		switch op {
		case objstore.OpOpen, objstore.OpList, objstore.OpReadAt:
			return nil
		}
		if ops.Add(1) >= int64(k) {
			dead.Store(true)
			return objstore.ErrInjected
		}
		return nil
	})
	return &dead
}

func writtenAfter(i, step int) bool {
	for s := step + 1; s < 12; s++ {
		if i >= s*24<<10 && i < s*24<<10+40<<10 {
			return true
		}
	}
	return false
}

// TestCorruptionInTheMiddleIsReported flips a bit in a record that is
// followed by others: Open must fail naming the object and offset, and fsck
// must list it.
func TestCorruptionInTheMiddleIsReported(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	require.NoError(t, Create(st, "d", Config{Size: 1 << 20, SegmentSize: 1 << 20}))
	v := openChecked(t, st, "d", Options{CheckpointInterval: -1})
	for i := 0; i < 8; i++ {
		require.NoError(t, v.WriteAt(bytes.Repeat([]byte{byte(i + 1)}, 4096), int64(i)*4096, false))
	}
	require.NoError(t, v.lw.close()) // no checkpoint: open must replay
	v.readers.close()
	v.releaseOwner()
	require.NoError(t, st.Corrupt(segName("d", 1), segment.SegmentHeaderLen+3*(segment.HeaderSize+4096+4)))
	_, err := Open(st, "d", Options{})
	var ce *CorruptionError
	require.True(t, errors.As(err, &ce), "got %v", err)
	require.Equal(t, segName("d", 1), ce.Object)
	require.EqualValues(t, segment.SegmentHeaderLen+3*(segment.HeaderSize+4096+4), ce.Offset)
	rep, err := Fsck(st, "d", nil)
	require.NoError(t, err)
	require.False(t, rep.OK())
	require.Contains(t, rep.Problems[0], segName("d", 1))
}

// TestTornTailIsEOF cuts the last record short: the log ends before it,
// and the next writer continues cleanly.
func TestTornTailIsEOF(t *testing.T) {
	simulateOwnDeath(t)
	st := objstore.NewMemStore(false, 1)
	require.NoError(t, Create(st, "t", Config{Size: 1 << 20, SegmentSize: 1 << 20}))
	v := openChecked(t, st.Session(), "t", Options{CheckpointInterval: -1})
	require.NoError(t, v.WriteAt(bytes.Repeat([]byte{1}, 4096), 0, true))
	require.NoError(t, v.WriteAt(bytes.Repeat([]byte{2}, 4096), 4096, false))
	v.lw.ioMu.Lock() // stop the pusher, then write part of the last record by hand
	seg := v.lw.segmentBytes(1)
	_, err := v.lw.w.Write(seg[v.lw.pushed : len(seg)-100])
	require.NoError(t, err)
	st.Crash()
	v.lw.ioMu.Unlock()

	v2 := openChecked(t, st, "t", Options{})
	got := make([]byte, 8192)
	require.NoError(t, v2.ReadAt(got, 0))
	require.Equal(t, bytes.Repeat([]byte{1}, 4096), got[:4096])
	require.Equal(t, make([]byte, 4096), got[4096:])
	require.NoError(t, v2.WriteAt(bytes.Repeat([]byte{3}, 4096), 8192, true))
	require.NoError(t, v2.Close())
	v3 := openChecked(t, st, "t", Options{})
	require.NoError(t, v3.ReadAt(got, 4096))
	require.Equal(t, bytes.Repeat([]byte{3}, 4096), got[4096:])
	require.NoError(t, v3.Close())
	rep, err := Fsck(st, "t", nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "%v", rep.Problems)
}

// TestTruncatedSegmentEndsTheLog: segments become durable in order only at a
// flush, so a crash can leave segment 1 truncated while segment 2 exists.
// The log then ends inside segment 1 and segment 2 is discarded; the same
// segment with all its bytes but one flipped is corruption instead.
func TestTruncatedSegmentEndsTheLog(t *testing.T) {
	simulateOwnDeath(t)
	setup := func(t *testing.T) (*objstore.DirStore, string) {
		dir := t.TempDir()
		st, err := objstore.NewDirStore(dir)
		require.NoError(t, err)
		require.NoError(t, Create(st, "s", Config{Size: 4 << 20, SegmentSize: 1 << 20}))
		v := openChecked(t, st, "s", Options{CheckpointInterval: -1})
		require.NoError(t, v.WriteAt(bytes.Repeat([]byte{9}, 4096), 0, true)) // flushed
		for i := 1; i < 400; i++ {                                            // ~1.6 MiB: seals segment 1
			require.NoError(t, v.WriteAt(bytes.Repeat([]byte{byte(i)}, 4096), int64(i)*4096, false))
		}
		require.NoError(t, v.lw.close()) // push everything, no checkpoint
		segs, err := listSegments(st, "s")
		require.NoError(t, err)
		require.Equal(t, []uint64{1, 2}, segs)
		return st, filepath.Join(dir, filepath.FromSlash(segName("s", 1)))
	}
	t.Run("truncated", func(t *testing.T) {
		st, seg1 := setup(t)
		require.NoError(t, os.Truncate(seg1, 100<<10))
		v := openChecked(t, st, "s", Options{})
		got := make([]byte, 4096)
		require.NoError(t, v.ReadAt(got, 0))
		require.Equal(t, bytes.Repeat([]byte{9}, 4096), got, "the flushed write survives")
		require.NoError(t, v.ReadAt(got, 399*4096))
		require.Equal(t, make([]byte, 4096), got, "writes after the truncation point are gone")
		segs, err := listSegments(st, "s")
		require.NoError(t, err)
		require.Equal(t, []uint64{1}, segs, "segment 2 is not part of the log")
		require.NoError(t, v.WriteAt(bytes.Repeat([]byte{7}, 4096), 8192, true))
		require.NoError(t, v.Close())
		// Recovery never deletes what it did not write: segment 2 waits in
		// lost+found, and fsck reports it as damage until it is cleared.
		rep, err := Fsck(st, "s", nil)
		require.NoError(t, err)
		require.False(t, rep.OK())
		require.Len(t, rep.SetAside, 1)
		require.Contains(t, rep.SetAside[0].Name, "s/lost+found/0000000000000002-")
		require.Greater(t, rep.SetAside[0].Bytes, int64(500<<10), "the segment whole, with its data")
		n, bytes, err := ClearLostFound(st, "s")
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Equal(t, rep.SetAside[0].Bytes, bytes)
		rep, err = Fsck(st, "s", nil)
		require.NoError(t, err)
		require.True(t, rep.OK(), "%v", rep.Problems)
	})
	t.Run("bitflip in the last record", func(t *testing.T) {
		// Without a checkpoint after it, a damaged last record looks like a
		// crash's end of the log: recovery ends the log there, but the bytes
		// stay and fsck reports them, before and after the reopen.
		st, seg1 := setup(t)
		seg2 := filepath.Join(filepath.Dir(seg1), filepath.Base(segName("s", 2)))
		fi, err := os.Stat(seg2)
		require.NoError(t, err)
		f, err := os.OpenFile(seg2, os.O_RDWR, 0)
		require.NoError(t, err)
		_, err = f.WriteAt([]byte{0x5a}, fi.Size()-100)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		rep, err := Fsck(st, "s", nil)
		require.NoError(t, err)
		require.False(t, rep.OK(), "a flipped byte in the last record is damage, not ok")
		require.Contains(t, rep.Problems[0], "fails its checksum")
		v := openChecked(t, st, "s", Options{})
		require.NoError(t, v.WriteAt(bytes.Repeat([]byte{7}, 4096), 8192, true))
		require.NoError(t, v.Close())
		rep, err = Fsck(st, "s", nil)
		require.NoError(t, err)
		require.False(t, rep.OK(), "still reported after the reopen")
		require.Contains(t, rep.Problems[0], segName("s", 2))
		_, err = os.Stat(seg2)
		require.NoError(t, err, "the damaged segment is kept")
	})
	t.Run("bitflip", func(t *testing.T) {
		st, seg1 := setup(t)
		f, err := os.OpenFile(seg1, os.O_RDWR, 0)
		require.NoError(t, err)
		_, err = f.WriteAt([]byte{0xff}, 200<<10)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		_, err = Open(st, "s", Options{})
		var ce *CorruptionError
		require.True(t, errors.As(err, &ce), "got %v", err)
		require.Equal(t, segName("s", 1), ce.Object)
	})
}

// requireFsckAfterCrash runs fsck after a simulated power failure and
// reopen: recovery may have set aside segments no flush covered (the model
// checks proved nothing flushed is lost); apart from those fsck finds
// nothing, and once an operator clears them, nothing at all.
func requireFsckAfterCrash(t *testing.T, st objstore.Store, vol string, what string) {
	t.Helper()
	rep, err := Fsck(st, vol, nil)
	require.NoError(t, err, what)
	require.Len(t, rep.Problems, len(rep.SetAside), "%s: %v", what, rep.Problems)
	if len(rep.SetAside) > 0 {
		n, _, err := ClearLostFound(st, vol)
		require.NoError(t, err, what)
		require.Equal(t, len(rep.SetAside), n, what)
		rep, err = Fsck(st, vol, nil)
		require.NoError(t, err, what)
		require.True(t, rep.OK(), "%s: after clearing lost+found: %v", what, rep.Problems)
	}
}
