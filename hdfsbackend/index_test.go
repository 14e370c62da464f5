package hdfsbackend_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/hlfs/hlfs/hdfsbackend"
	"github.com/hlfs/hlfs/hdfsbackend/hdfstest"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/lfs"
	"github.com/stretchr/testify/require"
)

// requests counts the NameNode requests a listing makes.
type requests struct {
	objstore.Store
	n atomic.Int64
}

func (r *requests) List(dir string) ([]string, error) {
	r.n.Add(1)
	return r.Store.List(dir)
}

func (r *requests) Open(name string) (objstore.Reader, error) {
	r.n.Add(1)
	return r.Store.Open(name)
}

// On HDFS a listing through the store index costs a few NameNode requests
// whatever the number of volumes, and says what Stat says of each.
func TestListIndexedOnHDFS(t *testing.T) {
	st := hdfstest.NewStore(t, hdfsbackend.Options{})
	x := lfs.OpenIndex(st, lfs.IndexOptions{})
	defer x.Close()
	for i := range 30 {
		require.NoError(t, lfs.Create(st, fmt.Sprintf("v%02d", i), lfs.Config{Size: 1 << 20, SegmentSize: 1 << 20}))
	}
	v, err := lfs.Open(st, "v00", lfs.Options{})
	require.NoError(t, err)
	require.NoError(t, v.WriteAt(make([]byte, 256<<10), 0, true))
	require.NoError(t, v.CreateSnapshot("s"))
	require.NoError(t, v.Close())
	require.NoError(t, lfs.Clone(st, "v00", "s", "kid"))
	require.NoError(t, x.Close()) // writes the object

	r := &requests{Store: st}
	sums, err := lfs.ListIndexed(r)
	require.NoError(t, err)
	require.Len(t, sums, 31)
	require.LessOrEqual(t, r.n.Load(), int64(3), "the root, .index/ and one object")
	for _, s := range sums {
		require.True(t, s.Indexed, s.Name)
		info, err := lfs.Stat(st, s.Name)
		require.NoError(t, err)
		require.True(t, info.Created.Equal(s.Created))
		info.Created = s.Created
		require.Equal(t, info, s.Info)
	}
	require.Equal(t, "v00", sums[1].Name) // after "kid"
	require.Equal(t, []string{"s"}, sums[1].Snapshots)
	require.Equal(t, []string{"kid"}, sums[1].Clones)
}
