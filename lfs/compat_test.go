package lfs

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// testdata/v1store is a store written by hlfs before the cleaner (format 1
// checkpoints: no space books, no map generations): a 512 KiB compressed
// volume v1, imported from an image, snapshot s1, then half overwritten.
const (
	v1LiveSHA256 = "ffa438dffb96d942cad05026146c28200b0ac2b0065eff36127e6405ee18e3f4"
	v1SnapSHA256 = "df5186bee09a768f7b5b9f12c2932e371d0a556cc67331f5fb05fe3ed4174d0d"
)

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// TestFormat1VolumeIsReadAndCleaned opens a volume written before the
// cleaner: it reads the same, its books start inexact and are recounted, gc
// cleans it, and it still reads the same after a restart and passes fsck.
func TestFormat1VolumeIsReadAndCleaned(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join("testdata", "v1store"))))
	st, err := objstore.NewDirStore(dir)
	require.NoError(t, err)
	check := func(v *Volume, what string) {
		t.Helper()
		got := make([]byte, v.Size())
		require.NoError(t, v.ReadAt(got, 0))
		require.Equal(t, v1LiveSHA256, sha(got), what)
		view, err := v.SnapshotView("s1")
		require.NoError(t, err)
		require.NoError(t, view.ReadAt(got, 0))
		require.Equal(t, v1SnapSHA256, sha(got), what+": snapshot s1")
	}
	v := openChecked(t, st, "v1", Options{})
	check(v, "as written by format 1")
	v.mu.RLock()
	exact := v.mu.books.exact
	v.mu.RUnlock()
	require.False(t, exact, "a format 1 checkpoint has no books")
	stats, err := v.GC(GCOptions{})
	require.NoError(t, err)
	require.Greater(t, stats.SegmentsDeleted, 0)
	checkBooks(t, v)
	check(v, "after gc")
	require.NoError(t, v.Close())
	v = openChecked(t, st, "v1", Options{ReadOnly: true})
	check(v, "after a restart")
	require.NoError(t, v.Close())
	rep, err := Fsck(st, "v1", nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "%v", rep.Problems)
	require.True(t, rep.BooksExact)
}
