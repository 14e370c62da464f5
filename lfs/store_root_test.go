package lfs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// Entries of a store's root that are not volumes are listed apart, and
// never make listing fail (issue 10, item 3): on a real directory, where a
// file in the root used to fail with "not a directory".
func TestListStoreSkipsWhatIsNotAVolume(t *testing.T) {
	dir := t.TempDir()
	st, err := objstore.OpenDirStore(dir)
	require.NoError(t, err)
	require.NoError(t, Create(st, "vol", Config{Size: 1 << 20}))
	require.NoError(t, Create(st, "damaged", Config{Size: 1 << 20}))
	v := openChecked(t, st, "damaged", Options{})
	require.NoError(t, v.WriteAt([]byte("data"), 0, true))
	require.NoError(t, v.Close())
	require.NoError(t, os.Truncate(filepath.Join(dir, "damaged", "super"), 7))
	for path, content := range map[string]string{
		"README":                "a stray file",
		".snapshot/hourly.0/x":  "a filer's snapshot folder",
		"lost+found/x":          "fsck's folder",
		"left/lineage":          "a clone cut short",
		"left/super":            "",
		"cutshort/super":        "short",
		"empty/.keep-not-empty": "",
	} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, path)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, path), []byte(content), 0o644))
	}
	require.NoError(t, os.Remove(filepath.Join(dir, "empty", ".keep-not-empty")))

	l, err := ListStore(st)
	require.NoError(t, err)
	require.Equal(t, []string{"damaged", "vol"}, l.Volumes)
	require.Equal(t, []Ignored{
		{Name: ".snapshot", Kind: IgnoredName},
		{Name: "README", Kind: IgnoredFile},
		{Name: "left", Kind: IgnoredLeftover, Entries: []string{"lineage", "super"}},
		{Name: "lost+found", Kind: IgnoredName},
	}, l.Ignored)
	require.Equal(t, "README is a file, not a volume folder", l.Ignored[1].String())
	require.Contains(t, l.Ignored[2].String(), "left holds lineage, super but no superblock")

	// The stray file is no volume to any command.
	_, err = Stat(st, "README")
	require.ErrorIs(t, err, ErrNotFound)

	// Create refuses the leftovers, naming them; Remove clears them.
	err = Create(st, "left", Config{Size: 1 << 20})
	var left *LeftoverError
	require.ErrorAs(t, err, &left)
	require.ErrorIs(t, err, ErrExists)
	require.Equal(t, []string{"lineage", "super"}, left.Names)
	require.NoError(t, Remove(st, "left"))
	require.NoError(t, Create(st, "left", Config{Size: 1 << 20}))
	// A creation cut short is replaced.
	require.NoError(t, Create(st, "cutshort", Config{Size: 1 << 20}))
	// Remove never deletes what hlfs did not write.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "empty", "photo.jpg"), nil, 0o644))
	require.ErrorIs(t, Remove(st, "empty"), ErrNotFound)
	require.FileExists(t, filepath.Join(dir, "empty", "photo.jpg"))
	require.ErrorIs(t, Remove(st, "nothing"), ErrNotFound)

	// The damaged volume is removed whole.
	require.NoError(t, Remove(st, "damaged"))
	require.NoDirExists(t, filepath.Join(dir, "damaged"))
	l, err = ListStore(st)
	require.NoError(t, err)
	require.Equal(t, []string{"cutshort", "left", "vol"}, l.Volumes)
}
