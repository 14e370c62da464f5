package lfs

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// TestSnapshotCrashAtEveryStoreOperation runs snapshot create, delete,
// rollback, clone and flatten, letting the store die at each of its
// operations in turn (then dropping unsynced bytes). After reopening, every
// operation that returned success is there, every other one is either
// wholly there or wholly absent, and fsck finds nothing.
func TestSnapshotCrashAtEveryStoreOperation(t *testing.T) {
	simulateOwnDeath(t)
	a := bytes.Repeat([]byte{0xaa}, 64<<10)
	b := bytes.Repeat([]byte{0xbb}, 64<<10)
	c := bytes.Repeat([]byte{0xcc}, 16<<10)
	content := func(parts ...[]byte) []byte {
		m := make([]byte, 256<<10)
		for i, p := range parts {
			copy(m[i*32<<10:], p)
		}
		return m
	}
	snapS1, snapS2 := content(a), content(a, b)
	type outcome struct{ s1, s2, s1DeleteTried, s1Gone, rolledBack, cloned, cloneWritten, flattened bool }
	workload := func(st objstore.Store, o *outcome) {
		v, err := Open(st, "v", Options{CheckpointInterval: -1})
		if err != nil {
			return
		}
		defer func() { _ = v.Close() }()
		if v.WriteAt(a, 0, true) != nil {
			return
		}
		if o.s1 = v.CreateSnapshot("s1") == nil; !o.s1 {
			return
		}
		if v.WriteAt(b, 32<<10, true) != nil {
			return
		}
		if o.s2 = v.CreateSnapshot("s2") == nil; !o.s2 {
			return
		}
		if v.WriteAt(c, 0, true) != nil || v.checkpoint() != nil {
			return
		}
		o.s1DeleteTried = true
		if o.s1Gone = v.DeleteSnapshot("s1") == nil; !o.s1Gone {
			return
		}
		if v.Close() != nil {
			return
		}
		if o.rolledBack = Rollback(st, "v", "s2") == nil; !o.rolledBack {
			return
		}
		if o.cloned = Clone(st, "v", "s2", "k") == nil; !o.cloned {
			return
		}
		k, err := Open(st, "k", Options{})
		if err != nil {
			return
		}
		o.cloneWritten = k.WriteAt(c, 64<<10, true) == nil
		if k.Close() != nil || !o.cloneWritten {
			return
		}
		o.flattened = Flatten(st, "k", nil) == nil
	}
	read := func(v interface{ ReadAt([]byte, int64) error }) []byte {
		p := make([]byte, 256<<10)
		require.NoError(t, v.ReadAt(p, 0))
		return p
	}
	for k := 1; ; k++ {
		st := objstore.NewMemStore(k%2 == 0, int64(k))
		require.NoError(t, Create(st, "v", Config{Size: 256 << 10, SegmentSize: 1 << 20}))
		dead := dieFrom(st, k)
		var o outcome
		workload(st.Session(), &o)
		st.SetInjector(nil)
		st.Crash()

		v, err := Open(st, "v", Options{})
		require.NoError(t, err, "k=%d", k)
		infos, err := v.Snapshots()
		require.NoError(t, err, "k=%d", k)
		have := map[string]bool{}
		for _, i := range infos {
			have[i.Name] = true
			view, err := v.SnapshotView(i.Name)
			require.NoError(t, err)
			want := map[string][]byte{"s1": snapS1, "s2": snapS2}[i.Name]
			require.Equal(t, want, read(view), "k=%d: content of snapshot %s", k, i.Name)
		}
		if o.s1 && !o.s1DeleteTried {
			require.True(t, have["s1"], "k=%d: s1 was acknowledged", k)
		}
		if o.s1Gone {
			require.False(t, have["s1"], "k=%d: s1 removal was acknowledged", k)
		}
		if o.s2 {
			require.True(t, have["s2"], "k=%d: s2 was acknowledged", k)
		}
		live := read(v)
		if o.rolledBack {
			require.Equal(t, snapS2, live, "k=%d: rollback was acknowledged", k)
		} else if !bytes.Equal(live, snapS2) && o.s2 {
			before := append([]byte(nil), snapS2...)
			copy(before, c)
			require.Equal(t, before, live, "k=%d: live volume is neither before nor after rollback", k)
		}
		require.NoError(t, v.Close())
		requireFsckAfterCrash(t, st, "v", fmt.Sprintf("k=%d", k))

		kv, err := Open(st, "k", Options{})
		if o.cloned {
			require.NoError(t, err, "k=%d: clone was acknowledged", k)
		}
		if err == nil {
			want := append([]byte(nil), snapS2...)
			if o.cloneWritten {
				copy(want[64<<10:], c)
			}
			got := read(kv)
			if !o.cloneWritten && !bytes.Equal(got, want) {
				copy(want[64<<10:], c) // the unacknowledged write may be there
			}
			require.Equal(t, want, got, "k=%d: clone content", k)
			require.NoError(t, kv.Close())
			requireFsckAfterCrash(t, st, "k", fmt.Sprintf("k=%d: clone", k))
			info, err := Stat(st, "k")
			require.NoError(t, err)
			if o.flattened {
				require.Empty(t, info.Source, "k=%d: flatten was acknowledged", k)
			}
		} else {
			require.True(t, errors.Is(err, ErrNotFound), "k=%d: %v", k, err)
		}
		if !dead.Load() {
			require.True(t, o.flattened, "the workload completes without faults")
			require.Greater(t, k, 50)
			t.Logf("crashed at each of %d store operations", k-1)
			break
		}
	}
}
