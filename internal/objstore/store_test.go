package objstore_test

import (
	"bytes"
	"math/bits"
	"os"
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/internal/objstore/storetest"
	"github.com/stretchr/testify/require"
)

func TestMemStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) objstore.Store { return objstore.NewMemStore(false, 1) })
}

func TestMemStoreNoSyncContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) objstore.Store { return objstore.NewMemStore(true, 1) })
}

func TestDirStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) objstore.Store {
		s, err := objstore.NewDirStore(t.TempDir())
		require.NoError(t, err)
		return s
	})
}

func TestMemStoreCrashKeepsSyncedDropsUnsynced(t *testing.T) {
	s := objstore.NewMemStore(false, 7)
	w, err := s.Create("synced")
	require.NoError(t, err)
	_, _ = w.Write([]byte("durable"))
	require.NoError(t, w.Sync())
	_, _ = w.Write([]byte("-maybe"))
	w2, err := s.Create("never-synced")
	require.NoError(t, err)
	_, _ = w2.Write([]byte("gone"))
	s.Crash()

	r0, err := s.Open("never-synced")
	require.NoError(t, err, "created names are durable")
	require.LessOrEqual(t, r0.Size(), int64(4), "unsynced bytes may survive in part, never more")
	r, err := s.Open("synced")
	require.NoError(t, err)
	require.GreaterOrEqual(t, r.Size(), int64(7))
	require.LessOrEqual(t, r.Size(), int64(13))
	_, err = w.Write([]byte("x"))
	require.ErrorIs(t, err, objstore.ErrCrashed)
}

func TestMemStoreInjector(t *testing.T) {
	s := objstore.NewMemStore(false, 1)
	s.SetInjector(func(op objstore.Op, name string) error {
		if op == objstore.OpSync {
			return objstore.ErrInjected
		}
		return nil
	})
	w, err := s.Create("o")
	require.NoError(t, err)
	require.ErrorIs(t, w.Sync(), objstore.ErrInjected)
}

func TestMemStoreCloseIsDurableOnlyWithoutSync(t *testing.T) {
	lost := map[bool]int{}
	for _, noSync := range []bool{false, true} {
		for seed := int64(1); seed <= 20; seed++ {
			s := objstore.NewMemStore(noSync, seed)
			for _, name := range []string{"closed", "persisted"} {
				w, err := s.Create(name)
				require.NoError(t, err)
				_, _ = w.Write([]byte("abcdefgh"))
				require.NoError(t, w.Close())
			}
			require.NoError(t, s.Persist("persisted"))
			s.Crash()
			r, err := s.Open("persisted")
			require.NoError(t, err)
			require.EqualValues(t, 8, r.Size())
			r, err = s.Open("closed")
			require.NoError(t, err, "created names are durable")
			if r.Size() < 8 {
				lost[noSync]++
			}
		}
	}
	require.Zero(t, lost[true], "close is durable on stores without sync")
	require.Greater(t, lost[false], 0, "close alone is not durable where sync exists")
}

// TestMemStoreClone: a copy has the same objects and durability, and
// neither store sees the other's later changes.
func TestMemStoreClone(t *testing.T) {
	s := objstore.NewMemStore(false, 1)
	w, err := s.Create("a")
	require.NoError(t, err)
	_, _ = w.Write([]byte("durable"))
	require.NoError(t, w.Sync())
	_, _ = w.Write([]byte("-unsynced"))
	c := s.Clone(2)
	_, _ = w.Write([]byte("-later"))
	require.NoError(t, w.Close())
	require.NoError(t, s.Remove("a"))

	r, err := c.Open("a")
	require.NoError(t, err)
	got := make([]byte, r.Size())
	_, err = r.ReadAt(got, 0)
	require.NoError(t, err)
	require.Equal(t, "durable-unsynced", string(got), "the copy has the bytes as they were, not later ones")
	c.Crash()
	r, err = c.Open("a")
	require.NoError(t, err)
	require.GreaterOrEqual(t, r.Size(), int64(7), "synced bytes stay durable in the copy")
	require.LessOrEqual(t, r.Size(), int64(16))
	_, err = s.Open("a")
	require.ErrorIs(t, err, objstore.ErrNotExist, "the original's remove stays in the original")
}

// TestMemStoreFlipBitsOnRead: reads come back damaged at the rate asked,
// one bit each; the stored bytes stay as written.
func TestMemStoreFlipBitsOnRead(t *testing.T) {
	s := objstore.NewMemStore(false, 1)
	want := bytes.Repeat([]byte{0x5a}, 4096)
	require.NoError(t, objstore.WriteAll(s, "a", want))
	r, err := s.Open("a")
	require.NoError(t, err)
	s.FlipBitsOnRead(0.5)
	damaged := 0
	got := make([]byte, len(want))
	for i := 0; i < 200; i++ {
		_, err := r.ReadAt(got, 0)
		require.NoError(t, err)
		diff := 0
		for j := range got {
			diff += bits.OnesCount8(got[j] ^ want[j])
		}
		require.LessOrEqual(t, diff, 1)
		damaged += diff
	}
	require.InDelta(t, 100, damaged, 40)
	s.FlipBitsOnRead(0)
	_, err = r.ReadAt(got, 0)
	require.NoError(t, err)
	require.Equal(t, want, got, "the stored bytes are intact")
}

// OpenDirStore never creates its root: a mistyped store path is an error
// naming it, not a new empty store.
func TestOpenDirStoreMissing(t *testing.T) {
	dir := t.TempDir() + "/typo"
	_, err := objstore.OpenDirStore(dir)
	require.ErrorIs(t, err, objstore.ErrNoStore)
	require.ErrorContains(t, err, dir)
	_, statErr := os.Stat(dir)
	require.True(t, os.IsNotExist(statErr), "OpenDirStore created %s", dir)

	s, err := objstore.NewDirStore(dir)
	require.NoError(t, err)
	require.Equal(t, dir, s.Root())
	_, err = objstore.OpenDirStore(dir)
	require.NoError(t, err)

	file := t.TempDir() + "/file"
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	_, err = objstore.OpenDirStore(file)
	require.ErrorContains(t, err, "not a directory")
}

// TestDirStoreLargeObjectReadsBack: an object written in many pieces past
// the write-behind threshold (which starts the device's write-back as it
// goes) reads back exactly, before and after Sync.
func TestDirStoreLargeObjectReadsBack(t *testing.T) {
	s, err := objstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	w, err := s.Create("v/seg/1")
	require.NoError(t, err)
	var want []byte
	for i := 0; i < 40; i++ {
		p := bytes.Repeat([]byte{byte(i + 1)}, 512<<10+i) // odd sizes cross the threshold anywhere
		_, err := w.Write(p)
		require.NoError(t, err)
		want = append(want, p...)
	}
	got, err := objstore.ReadAll(s, "v/seg/1")
	require.NoError(t, err)
	require.True(t, bytes.Equal(want, got))
	require.NoError(t, w.Sync())
	require.NoError(t, w.Close())
	got, err = objstore.ReadAll(s, "v/seg/1")
	require.NoError(t, err)
	require.True(t, bytes.Equal(want, got))
}

// TestWriteBuffersReadsBack: WriteBuffers of more buffers than one writev
// takes, of every size (empty, tiny, larger than a writev's byte bound),
// appends them in order on the local store (writev) and on the in-memory
// one (a Write per buffer).
func TestWriteBuffersReadsBack(t *testing.T) {
	dir, err := objstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	for _, s := range []objstore.Store{dir, objstore.NewMemStore(false, 0)} {
		w, err := s.Create("v/seg/1")
		require.NoError(t, err)
		var want []byte
		var bufs [][]byte
		for i := 0; i < 2500; i++ {
			n := (i * 7919) % 300
			if i%500 == 0 {
				n = 600 << 10
			}
			p := bytes.Repeat([]byte{byte(i)}, n)
			bufs = append(bufs, p)
			want = append(want, p...)
		}
		require.NoError(t, objstore.WriteBuffers(w, bufs))
		_, err = w.Write([]byte("end"))
		require.NoError(t, err)
		want = append(want, "end"...)
		require.NoError(t, w.Close())
		got, err := objstore.ReadAll(s, "v/seg/1")
		require.NoError(t, err)
		require.True(t, bytes.Equal(want, got), "%T", s)
	}
}
