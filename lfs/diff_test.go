package lfs

import (
	"fmt"
	"math/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// identModel tracks, per byte, which operation last stored it (0: a hole).
// Writes of non-zero data and zero writes without punch store a record per
// piece, so two points of the volume hold the same record byte exactly when
// the model holds the same operation there: the exact oracle for Changes.
type identModel []uint32

// expectChanges is what Changes must report from a to b.
func expectChanges(a, b identModel) []ChangedRange {
	var out []ChangedRange
	for i := 0; i < len(a); {
		if a[i] == b[i] {
			i++
			continue
		}
		zero := b[i] == 0
		j := i
		for j < len(a) && a[j] != b[j] && (b[j] == 0) == zero {
			j++
		}
		out = append(out, ChangedRange{Off: int64(i), Length: int64(j - i), Zero: zero})
		i = j
	}
	return out
}

func changesOf(t *testing.T, v *Volume, from, to string) []ChangedRange {
	t.Helper()
	var got []ChangedRange
	require.NoError(t, v.Changes(from, to, func(r ChangedRange) error {
		got = append(got, r)
		return nil
	}))
	return got
}

// dirtyBits reads Dirty over [off, off+n) (asking again after partial
// answers) into one flag per byte.
func dirtyBits(t *testing.T, dirty func(off, n int64, fn func(int64, bool) error) error, off, n int64) []bool {
	t.Helper()
	out := make([]bool, 0, n)
	for int64(len(out)) < n {
		pos := off + int64(len(out))
		require.NoError(t, dirty(pos, n-int64(len(out)), func(k int64, d bool) error {
			require.Positive(t, k)
			for range k {
				out = append(out, d)
			}
			return nil
		}))
		require.Greater(t, off+int64(len(out)), pos, "Dirty made no progress")
	}
	require.Len(t, out, int(n))
	return out
}

func bitsOf(a, b identModel, off, n int64) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = a[off+int64(i)] != b[off+int64(i)]
	}
	return out
}

// TestChangesExact runs random writes, zero writes, trims, snapshots,
// rollbacks, cleaning passes and restarts, and checks after each step that
// Changes between every snapshot and the live volume, and between
// snapshots, and Dirty over random ranges, are exactly the model's: data
// the cleaner moved is never reported.
func TestChangesExact(t *testing.T) {
	const size = 128 << 10
	done := map[string]int{}
	for seed := int64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			st := objstore.NewMemStore(seed == 2, seed)
			require.NoError(t, Create(st, "v", Config{Size: size, BlockSize: 512, SegmentSize: 1 << 20, Compress: seed == 3}))
			v := openChecked(t, st, "v", Options{CheckpointInterval: 1 << 20})
			live := make(identModel, size)
			snaps := map[string]identModel{}
			var order []string
			op := uint32(0)
			for step := 0; step < 90; step++ {
				off := rng.Int63n(size)
				n := 1 + rng.Int63n(min(size-off, 16<<10))
				switch r := rng.Intn(100); {
				case r < 50:
					op++
					data := make([]byte, n)
					for i := range data {
						data[i] = byte(1 + rng.Intn(255)) // never a zero block: no hole
					}
					require.NoError(t, v.WriteAt(data, off, false))
					for i := off; i < off+n; i++ {
						live[i] = op
					}
				case r < 58:
					op++
					require.NoError(t, v.Zero(off, n, false, false)) // zeros stored as data
					for i := off; i < off+n; i++ {
						live[i] = op
					}
				case r < 70:
					require.NoError(t, v.Zero(off, n, true, false))
					clear(live[off : off+n])
				case r < 80:
					name := fmt.Sprintf("s%d", len(order)+1)
					require.NoError(t, v.CreateSnapshot(name))
					snaps[name] = append(identModel(nil), live...)
					order = append(order, name)
				case r < 84 && len(order) > 0:
					name := order[rng.Intn(len(order))]
					require.NoError(t, v.Close())
					require.NoError(t, Rollback(st, "v", name))
					v = openChecked(t, st, "v", Options{CheckpointInterval: 1 << 20})
					live = append(identModel(nil), snaps[name]...)
					done["rollback"]++
				case r < 92:
					stats, err := v.GC(GCOptions{MaxUtilization: 0.99})
					require.NoError(t, err)
					done["gc"]++
					done["gc bytes copied"] += int(stats.BytesCopied)
				default:
					require.NoError(t, v.Close())
					v = openChecked(t, st, "v", Options{CheckpointInterval: 1 << 20})
					done["reopen"]++
				}
				if step%4 != 3 || len(order) == 0 {
					continue
				}
				for _, from := range order {
					require.Equal(t, expectChanges(snaps[from], live), changesOf(t, v, from, ""), "step %d: %s to live", step, from)
				}
				from, to := order[rng.Intn(len(order))], order[rng.Intn(len(order))]
				require.Equal(t, expectChanges(snaps[from], snaps[to]), changesOf(t, v, from, to), "step %d: %s to %s", step, from, to)
				qoff := rng.Int63n(size)
				qn := 1 + rng.Int63n(size-qoff)
				got := dirtyBits(t, func(o, k int64, fn func(int64, bool) error) error { return v.Dirty(from, o, k, fn) }, qoff, qn)
				require.Equal(t, bitsOf(snaps[from], live, qoff, qn), got, "step %d: Dirty(%s)", step, from)
				view, err := v.SnapshotView(to)
				require.NoError(t, err)
				got = dirtyBits(t, func(o, k int64, fn func(int64, bool) error) error { return view.Dirty(from, o, k, fn) }, qoff, qn)
				require.Equal(t, bitsOf(snaps[from], snaps[to], qoff, qn), got, "step %d: %s Dirty(%s)", step, to, from)
				done["checks"]++
			}
		})
	}
	t.Logf("operations: %v", done)
	for _, k := range []string{"rollback", "gc", "gc bytes copied", "reopen", "checks"} {
		require.Positive(t, done[k], "the test never did a %s", k)
	}
}

// TestDirtyBitmapsFollowTheTree checks which snapshots a volume and a
// snapshot view offer: the live volume's head and its ancestors, a
// snapshot's proper ancestors, oldest first; a rollback changes the head.
func TestDirtyBitmapsFollowTheTree(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	v := newTestVolume(t, st, "v", 1<<20)
	require.Empty(t, v.DirtyBitmaps())
	for _, s := range []string{"a", "b", "c"} {
		require.NoError(t, v.CreateSnapshot(s))
	}
	require.Equal(t, []string{"a", "b", "c"}, v.DirtyBitmaps())
	view, err := v.SnapshotView("b")
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, view.DirtyBitmaps())
	require.NoError(t, v.Close())
	require.NoError(t, Rollback(st, "v", "a"))
	v = openChecked(t, st, "v", Options{})
	require.NoError(t, v.CreateSnapshot("d"))
	require.Equal(t, []string{"a", "d"}, v.DirtyBitmaps(), "b and c are on another branch now")
	require.NoError(t, v.DeleteSnapshot("a"))
	require.Equal(t, []string{"d"}, v.DirtyBitmaps())
	err = v.Changes("nope", "", func(ChangedRange) error { return nil })
	require.ErrorIs(t, err, ErrSnapshotNotFound)
	err = v.Dirty("a", 0, 4096, func(int64, bool) error { return nil })
	require.ErrorIs(t, err, ErrSnapshotNotFound)
}

// TestChangesOnClone checks that a clone's data shared with its source is
// not a change, and that writes to the clone after its own snapshot are.
func TestChangesOnClone(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	src := newTestVolume(t, st, "src", 1<<20)
	fill := make([]byte, 1<<20)
	for i := range fill {
		fill[i] = byte(1 + i%251)
	}
	require.NoError(t, src.WriteAt(fill, 0, false))
	require.NoError(t, src.CreateSnapshot("base"))
	require.NoError(t, src.Close())
	require.NoError(t, Clone(st, "src", "base", "c"))
	c := openChecked(t, st, "c", Options{})
	require.NoError(t, c.CreateSnapshot("c1"))
	require.NoError(t, c.WriteAt(fill[:8192], 64<<10, false))
	require.NoError(t, c.Zero(512<<10, 4096, true, false))
	require.Equal(t, []string{"c1"}, c.DirtyBitmaps())
	want := []ChangedRange{{Off: 64 << 10, Length: 8192}, {Off: 512 << 10, Length: 4096, Zero: true}}
	require.Equal(t, want, changesOf(t, c, "c1", ""))
	_, err := c.GC(GCOptions{MaxUtilization: 0.99})
	require.NoError(t, err)
	require.Equal(t, want, changesOf(t, c, "c1", ""))
}

// TestChangesStableDuringGC compares a snapshot with the live volume while
// the cleaner moves their shared data and writes go to the other half of
// the volume: the half nobody writes must never show a change (the cleaner
// redirects the live map before it publishes the snapshot maps; a
// comparison between the two steps would see moved data as changed).
func TestChangesStableDuringGC(t *testing.T) {
	const size = 1 << 20
	st := objstore.NewMemStore(false, 1)
	require.NoError(t, Create(st, "v", Config{Size: size, BlockSize: 4096, SegmentSize: 1 << 20}))
	v := openChecked(t, st, "v", Options{CheckpointInterval: 1 << 20})
	rng := rand.New(rand.NewSource(1))
	buf := make([]byte, 4096)
	for off := int64(0); off < size; off += 4096 {
		rng.Read(buf)
		require.NoError(t, v.WriteAt(buf, off, false))
	}
	require.NoError(t, v.CreateSnapshot("s1"))
	stop := make(chan struct{})
	errs := make(chan error, 1)
	var copied atomic.Int64
	go func() {
		defer close(errs)
		w := rand.New(rand.NewSource(2))
		b := make([]byte, 4096)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			w.Read(b)
			if err := v.WriteAt(b, size/2+w.Int63n(size/2/4096)*4096, false); err != nil {
				errs <- err
				return
			}
			if i%16 == 15 {
				stats, err := v.GC(GCOptions{MaxUtilization: 0.99})
				if err != nil {
					errs <- err
					return
				}
				copied.Add(stats.BytesCopied)
			}
		}
	}()
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; copied.Load() < 8<<20 && time.Now().Before(deadline); i++ {
		runs, err := v.diffWindow(1, 0, 0, size/2, maxDiffRuns)
		require.NoError(t, err)
		require.Len(t, runs, 1, "round %d: the unwritten half shows changes: %v", i, runs)
		require.Equal(t, blockmap.Same, runs[0].c)
	}
	close(stop)
	require.NoError(t, <-errs)
	require.Positive(t, copied.Load(), "the cleaner moved nothing")
}

// countingStore counts the bytes read from a store's objects.
type countingStore struct {
	objstore.Store
	n atomic.Int64
}

type countingReader struct {
	objstore.Reader
	n *atomic.Int64
}

func (s *countingStore) Open(name string) (objstore.Reader, error) {
	r, err := s.Store.Open(name)
	if err != nil {
		return nil, err
	}
	return countingReader{r, &s.n}, nil
}

func (r countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.Reader.ReadAt(p, off)
	r.n.Add(int64(n))
	return n, err
}

// TestIncrementalReadsLittle checks what a read-only open and Changes read
// after a burst of writes that a checkpoint covers: the segment holding the
// checkpoint's position is read from that position on (replay looks at
// nothing before it), and a comparison reads maps, never data.
func TestIncrementalReadsLittle(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	require.NoError(t, Create(st, "v", Config{Size: 16 << 20, SegmentSize: 32 << 20}))
	v := openChecked(t, st, "v", Options{})
	buf := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(buf)
	for off := int64(0); off < 8<<20; off += 1 << 20 {
		require.NoError(t, v.WriteAt(buf, off, false))
	}
	require.NoError(t, v.CreateSnapshot("s1"))
	for off := int64(0); off < 4<<20; off += 64 << 10 {
		require.NoError(t, v.WriteAt(buf[:4096], off, false))
	}
	require.NoError(t, v.CreateSnapshot("s2"))
	require.NoError(t, v.Close()) // a checkpoint at the end of the log

	cs := &countingStore{Store: st}
	ro, err := Open(cs, "v", Options{ReadOnly: true})
	require.NoError(t, err)
	defer ro.Close()
	opened := cs.n.Load()
	require.Less(t, opened, int64(64<<10), "a read-only open read %d bytes: the log before the checkpoint again?", opened)
	var changed int64
	require.NoError(t, ro.Changes("s1", "s2", func(r ChangedRange) error { changed += r.Length; return nil }))
	require.Equal(t, int64(64*4096), changed)
	require.Less(t, cs.n.Load()-opened, int64(64<<10), "Changes read data")
	reopened, err := Open(st, "v", Options{ReadOnly: true})
	require.NoError(t, err)
	require.NoError(t, reopened.Close())
}
