package objstore_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

type recyclingStore interface {
	objstore.Store
	objstore.Recycler
}

// TestRecyclerContract checks both Recyclers against the contract: the
// name moves into the pool, a recycled object shows its stale tail until
// Close cuts it, fencing holds, an empty pool creates a new object.
func TestRecyclerContract(t *testing.T) {
	for name, mk := range map[string]func(t *testing.T) recyclingStore{
		"mem": func(*testing.T) recyclingStore { return objstore.NewMemStore(false, 1) },
		"dir": func(t *testing.T) recyclingStore {
			s, err := objstore.NewDirStore(t.TempDir())
			require.NoError(t, err)
			return s
		},
	} {
		t.Run(name, func(t *testing.T) {
			st := mk(t)
			old := bytes.Repeat([]byte("old!"), 2048)
			require.NoError(t, objstore.WriteAll(st, "v/seg/1", old))
			require.ErrorIs(t, st.Recycle("v/seg/9", "v/pool"), objstore.ErrNotExist)
			require.NoError(t, st.Recycle("v/seg/1", "v/pool"))
			_, err := st.Open("v/seg/1")
			require.ErrorIs(t, err, objstore.ErrNotExist)
			names, err := st.List("v/pool")
			require.NoError(t, err)
			require.Equal(t, []string{"1"}, names)

			// Fencing: an existing name is refused and the pool keeps its object.
			require.NoError(t, objstore.WriteAll(st, "v/seg/2", []byte("x")))
			_, _, err = st.CreateRecycled("v/seg/2", "v/pool")
			require.ErrorIs(t, err, objstore.ErrExist)
			names, _ = st.List("v/pool")
			require.Equal(t, []string{"1"}, names)

			w, recycled, err := st.CreateRecycled("v/seg/3", "v/pool")
			require.NoError(t, err)
			require.True(t, recycled)
			names, _ = st.List("v/pool")
			require.Empty(t, names)
			_, err = w.Write([]byte("new"))
			require.NoError(t, err)
			require.NoError(t, w.Sync())
			r, err := st.Open("v/seg/3")
			require.NoError(t, err)
			require.Equal(t, int64(len(old)), r.Size(), "the stale tail shows until Close")
			got := make([]byte, 8)
			_, err = r.ReadAt(got, 0)
			require.NoError(t, err)
			require.Equal(t, "new!old!", string(got))
			require.NoError(t, r.Close())
			require.NoError(t, w.Close())
			b, err := objstore.ReadAll(st, "v/seg/3")
			require.NoError(t, err)
			require.Equal(t, "new", string(b), "Close cuts the stale tail")

			w, recycled, err = st.CreateRecycled("v/seg/4", "v/pool")
			require.NoError(t, err)
			require.False(t, recycled, "an empty pool creates a new object")
			_, _ = w.Write([]byte("fresh"))
			require.NoError(t, objstore.CloseDurably(w))
			b, _ = objstore.ReadAll(st, "v/seg/4")
			require.Equal(t, "fresh", string(b))
			_, _, err = st.CreateRecycled("v/seg/4", "v/pool")
			require.ErrorIs(t, err, objstore.ErrExist)
		})
	}
}

// TestMemStoreCrashKeepsStaleTail: after a crash, a recycled object holds
// its synced bytes, then perhaps some unsynced ones, then the old object's
// bytes; once closed it holds exactly what was written.
func TestMemStoreCrashKeepsStaleTail(t *testing.T) {
	for seed := int64(0); seed < 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			st := objstore.NewMemStore(false, seed)
			old := bytes.Repeat([]byte{'o'}, 100)
			require.NoError(t, objstore.WriteAll(st, "a", old))
			require.NoError(t, objstore.WriteAll(st, "b", old))
			require.NoError(t, st.Recycle("a", "pool"))
			require.NoError(t, st.Recycle("b", "pool"))
			w, _, err := st.CreateRecycled("x", "pool")
			require.NoError(t, err)
			_, _ = w.Write(bytes.Repeat([]byte{'s'}, 30))
			require.NoError(t, w.Sync())
			_, _ = w.Write(bytes.Repeat([]byte{'u'}, 40))
			wc, _, err := st.CreateRecycled("y", "pool")
			require.NoError(t, err)
			_, _ = wc.Write([]byte("closed"))
			require.NoError(t, wc.Close())
			st.Crash()

			b, err := objstore.ReadAll(st, "x")
			require.NoError(t, err)
			require.Len(t, b, 100)
			require.Equal(t, bytes.Repeat([]byte{'s'}, 30), b[:30])
			i := 30
			for i < 70 && b[i] == 'u' {
				i++
			}
			require.Equal(t, bytes.Repeat([]byte{'o'}, 100-i), b[i:], "after the torn point: stale bytes")
			b, _ = objstore.ReadAll(st, "y")
			require.Equal(t, "closed", string(b))
		})
	}
}
