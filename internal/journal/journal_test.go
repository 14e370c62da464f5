package journal_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/hlfs/hlfs/internal/journal"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/lfs"
	"github.com/stretchr/testify/require"
)

func TestJournalContract(t *testing.T) {
	// The decorator is a Store like any other (non-segment names go through
	// to the remote store; segment names live locally until shipped).
	j, err := journal.New(t.TempDir(), objstore.NewMemStore(true, 1), nil)
	require.NoError(t, err)
	defer j.Close()
	w, err := j.Create("v/seg/0000000000000001")
	require.NoError(t, err)
	_, err = w.Write([]byte("segment"))
	require.NoError(t, err)
	require.NoError(t, w.Sync(), "a journaled segment syncs locally")
	require.NoError(t, w.Close())
	names, err := j.List("v")
	require.NoError(t, err)
	require.Equal(t, []string{"journal", "seg"}, names)
	_, err = j.Create("v/seg/0000000000000001")
	require.ErrorIs(t, err, objstore.ErrExist)
}

// TestJournalShipsAndRecovers: flushes are durable in the local journal;
// a clean close ships everything and removes the marker; after a crash the
// volume cannot be opened from the store alone, and the same journal
// recovers and ships it.
func TestJournalShipsAndRecovers(t *testing.T) {
	dir := t.TempDir()
	remote := objstore.NewMemStore(true, 1) // HDFS-like: only Close is durable
	require.NoError(t, lfs.Create(remote, "vm", lfs.Config{Size: 8 << 20, SegmentSize: 1 << 20}))

	j, err := journal.New(dir, remote, nil)
	require.NoError(t, err)
	v, err := lfs.Open(j, "vm", lfs.Options{})
	require.NoError(t, err)
	data := bytes.Repeat([]byte("journal!"), 512)
	for i := 0; i < 600; i++ { // ~2.4 MiB: several segments
		require.NoError(t, v.WriteAt(data, int64(i%2000)*4096, false))
		if i%50 == 0 {
			require.NoError(t, v.Flush())
		}
	}
	require.NoError(t, v.Flush())
	local, _ := filepath.Glob(filepath.Join(dir, "vm", "seg", "*"))
	require.NotEmpty(t, local, "the newest segment is in the journal")

	// Crash: the process dies without closing; the store alone is stale.
	_, err = lfs.Open(remote, "vm", lfs.Options{ReadOnly: true})
	require.ErrorIs(t, err, lfs.ErrJournalPending)
	v.Abandon()
	_, err = journal.New(dir, remote, nil)
	require.ErrorIs(t, err, journal.ErrLocked, "one process per journal directory")
	j.Abandon()

	j2, err := journal.New(dir, remote, nil)
	require.NoError(t, err)
	require.NoError(t, j2.Recover("vm"))
	v, err = lfs.Open(j2, "vm", lfs.Options{})
	require.NoError(t, err)
	got := make([]byte, len(data))
	require.NoError(t, v.ReadAt(got, 599*4096))
	require.True(t, bytes.Equal(data, got), "the last flushed write survives the crash")
	require.NoError(t, v.Close())
	require.NoError(t, j2.Close())

	local, _ = filepath.Glob(filepath.Join(dir, "vm", "seg", "*"))
	require.Empty(t, local, "everything was shipped")
	v, err = lfs.Open(remote, "vm", lfs.Options{})
	require.NoError(t, err, "the store alone has everything now")
	require.NoError(t, v.ReadAt(got, 599*4096))
	require.True(t, bytes.Equal(data, got), "the store alone has it after shipping")
	require.NoError(t, v.Close())
	rep, err := lfs.Fsck(remote, "vm", nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "%v", rep.Problems)
}
