// Package storetest is the contract suite every objstore.Store passes: the
// memory, local directory and HDFS stores run the same tests.
package storetest

import (
	"errors"
	"io"
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// Run runs the contract suite; newStore returns an empty store each call.
func Run(t *testing.T, newStore func(t *testing.T) objstore.Store) {
	t.Run("CreateWriteCloseRead", func(t *testing.T) {
		s := newStore(t)
		w, err := s.Create("vol/seg/0001")
		require.NoError(t, err)
		_, err = w.Write([]byte("hello "))
		require.NoError(t, err)
		_, err = w.Write([]byte("world"))
		require.NoError(t, err)
		require.NoError(t, objstore.CloseDurably(w))
		r, err := s.Open("vol/seg/0001")
		require.NoError(t, err)
		defer r.Close()
		require.EqualValues(t, 11, r.Size())
		buf := make([]byte, 5)
		n, err := r.ReadAt(buf, 6)
		require.NoError(t, err)
		require.Equal(t, "world", string(buf[:n]))
		n, err = r.ReadAt(make([]byte, 8), 6)
		require.Equal(t, 5, n)
		require.ErrorIs(t, err, io.EOF)
	})
	t.Run("CreateIsExclusive", func(t *testing.T) {
		s := newStore(t)
		w, err := s.Create("a/b")
		require.NoError(t, err)
		require.NoError(t, w.Close())
		_, err = s.Create("a/b")
		require.ErrorIs(t, err, objstore.ErrExist)
	})
	t.Run("SyncOrUnsupported", func(t *testing.T) {
		s := newStore(t)
		w, err := s.Create("x")
		require.NoError(t, err)
		_, err = w.Write([]byte("abc"))
		require.NoError(t, err)
		if err := w.Sync(); err != nil {
			require.ErrorIs(t, err, objstore.ErrSyncUnsupported)
		}
		require.NoError(t, w.Close())
		require.NoError(t, s.Persist("x"))
		require.ErrorIs(t, s.Persist("nope"), objstore.ErrNotExist)
	})
	t.Run("ListSizes", func(t *testing.T) {
		s := newStore(t)
		for n, size := range map[string]int{"v/seg/1": 3, "v/seg/2": 5, "v/seg/sub/x": 1} {
			w, err := s.Create(n)
			require.NoError(t, err)
			_, err = w.Write(make([]byte, size))
			require.NoError(t, err)
			require.NoError(t, objstore.CloseDurably(w))
		}
		sizes, err := objstore.ListSizes(s, "v/seg")
		require.NoError(t, err)
		require.Equal(t, map[string]int64{"1": 3, "2": 5}, sizes, "folders are left out")
		sizes, err = objstore.ListSizes(s, "missing")
		require.NoError(t, err)
		require.Empty(t, sizes)
		_, err = objstore.ListSizes(s, "v/seg/1")
		require.ErrorIs(t, err, objstore.ErrNotFolder)
	})
	t.Run("ListSortedOneLevel", func(t *testing.T) {
		s := newStore(t)
		for _, n := range []string{"v/seg/2", "v/seg/1", "v/super", "w/super"} {
			w, err := s.Create(n)
			require.NoError(t, err)
			require.NoError(t, w.Close())
		}
		names, err := s.List("")
		require.NoError(t, err)
		require.Equal(t, []string{"v", "w"}, names)
		names, err = s.List("v")
		require.NoError(t, err)
		require.Equal(t, []string{"seg", "super"}, names)
		names, err = s.List("v/seg")
		require.NoError(t, err)
		require.Equal(t, []string{"1", "2"}, names)
		names, err = s.List("missing")
		require.NoError(t, err)
		require.Empty(t, names)
	})
	// A stray file where a folder is expected (a README in a store's
	// root) is reported as such, not as a failure of the store.
	t.Run("ListOfAnObject", func(t *testing.T) {
		s := newStore(t)
		w, err := s.Create("README")
		require.NoError(t, err)
		require.NoError(t, w.Close())
		_, err = s.List("README")
		require.ErrorIs(t, err, objstore.ErrNotFolder)
		names, err := s.List("")
		require.NoError(t, err)
		require.Equal(t, []string{"README"}, names)
	})
	t.Run("RemoveAndMissing", func(t *testing.T) {
		s := newStore(t)
		w, err := s.Create("d/o")
		require.NoError(t, err)
		require.NoError(t, w.Close())
		require.NoError(t, s.Remove("d/o"))
		_, err = s.Open("d/o")
		require.ErrorIs(t, err, objstore.ErrNotExist)
		require.ErrorIs(t, s.Remove("d/o"), objstore.ErrNotExist)
	})
	t.Run("RenameReplaces", func(t *testing.T) {
		s := newStore(t)
		for _, n := range []string{"v/super", "v/super.tmp"} {
			w, err := s.Create(n)
			require.NoError(t, err)
			_, err = w.Write([]byte(n))
			require.NoError(t, err)
			require.NoError(t, w.Close())
		}
		require.NoError(t, s.Rename("v/super.tmp", "v/super"))
		r, err := s.Open("v/super")
		require.NoError(t, err)
		buf := make([]byte, r.Size())
		_, err = r.ReadAt(buf, 0)
		require.NoError(t, err)
		require.NoError(t, r.Close())
		require.Equal(t, "v/super.tmp", string(buf))
		names, err := s.List("v")
		require.NoError(t, err)
		require.Equal(t, []string{"super"}, names)
		require.ErrorIs(t, s.Rename("v/none", "v/x"), objstore.ErrNotExist)
	})
	t.Run("BadNames", func(t *testing.T) {
		s := newStore(t)
		for _, n := range []string{"", "/abs", "a/../b", "a//b", "..", "a/"} {
			_, err := s.Create(n)
			require.True(t, errors.Is(err, objstore.ErrBadName), "%q: %v", n, err)
		}
	})
}
