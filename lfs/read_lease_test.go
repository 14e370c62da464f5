package lfs

import (
	"bytes"
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// TestReadOnlyOpenKeepsSnapshotMapObjects: a read-only open (hlfs snapshot
// ls, du, fsck) loads snapshot maps by the generations the checkpoint it
// read names, possibly long after it read it; the owner's cleaner writes
// newer generations and its checkpoints used to remove the old ones under
// it ("load snapshot s1: object does not exist", found by the crash soak).
// While a fresh read lease exists, they stay.
func TestReadOnlyOpenKeepsSnapshotMapObjects(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	const size = 4 << 20
	v := newTestVolume(t, st, "r", size)
	snapData := bytes.Repeat([]byte{1}, size)
	require.NoError(t, v.WriteAt(snapData, 0, false))
	require.NoError(t, v.CreateSnapshot("s1"))
	require.NoError(t, v.WriteAt(bytes.Repeat([]byte{2}, size/2), 0, false))
	require.NoError(t, v.Close()) // a checkpoint naming s1's map object
	v = openChecked(t, st, "r", Options{})

	ro := openChecked(t, st, "r", Options{ReadOnly: true})
	if e, _ := ro.mu.snaps.byName("s1"); e.m != nil {
		t.Fatal("the test needs a reader that loads s1's map from its object")
	}
	// The owner moves what s1 names (a new generation of its map) and
	// checkpoints past the generation the reader's checkpoint names.
	for i := 0; i < 3; i++ {
		require.NoError(t, v.WriteAt(bytes.Repeat([]byte{byte(3 + i)}, size/2), size/2, false))
		_, err := v.GC(GCOptions{MaxUtilization: 1})
		require.NoError(t, err)
	}
	infos, err := ro.Snapshots()
	require.NoError(t, err, "the reader lost a snapshot map object under it")
	require.Len(t, infos, 1)
	view, err := ro.SnapshotView("s1")
	require.NoError(t, err)
	got := make([]byte, size)
	require.NoError(t, view.ReadAt(got, 0))
	require.Equal(t, snapData, got)
	require.NoError(t, ro.Close())

	// Once the reader is gone the next checkpoint removes what no
	// checkpoint names.
	require.NoError(t, v.WriteAt([]byte{9}, 0, false))
	_, err = v.GC(GCOptions{MaxUtilization: 1})
	require.NoError(t, err)
	names, err := st.List("r/snap")
	require.NoError(t, err)
	require.Len(t, names, 1, "stale generations left: %v", names)
	require.NoError(t, v.Close())
}
