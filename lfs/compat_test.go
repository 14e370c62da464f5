package lfs

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
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

// reopenAndFsck opens vol read-only, checks it reads as check wants after
// a restart, and requires fsck to pass; it returns fsck's report.
func reopenAndFsck(t *testing.T, st objstore.Store, vol string, check func(*Volume, string)) FsckReport {
	t.Helper()
	v := openChecked(t, st, vol, Options{ReadOnly: true})
	check(v, "after a restart")
	require.NoError(t, v.Close())
	rep, err := Fsck(st, vol, nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "%v", rep.Problems)
	return rep
}

// checkLiveAndS1 reads the whole volume and its snapshot s1 and compares
// their SHA-256 with live and snap.
func checkLiveAndS1(t *testing.T, v *Volume, live, snap, what string) {
	t.Helper()
	got := make([]byte, v.Size())
	require.NoError(t, v.ReadAt(got, 0))
	require.Equal(t, live, sha(got), what)
	view, err := v.SnapshotView("s1")
	require.NoError(t, err)
	require.NoError(t, view.ReadAt(got, 0))
	require.Equal(t, snap, sha(got), what+": snapshot s1")
}

// TestFormat1VolumeIsReadAndCleaned opens a volume written before the
// cleaner: it reads the same, its books start inexact and are recounted, gc
// cleans it, and it still reads the same after a restart and passes fsck.
func TestFormat1VolumeIsReadAndCleaned(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join("testdata", "v1store"))))
	st, err := objstore.NewDirStore(dir)
	require.NoError(t, err)
	check := func(v *Volume, what string) { t.Helper(); checkLiveAndS1(t, v, v1LiveSHA256, v1SnapSHA256, what) }
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
	require.True(t, reopenAndFsck(t, st, "v1", check).BooksExact)
}

// testdata/v3store is a store written by hlfs with block checksums and
// before run extents (format 3 checkpoints and snapshot maps): a 256 KiB
// volume v3 imported from an image, snapshot s1, its first 64 KiB
// overwritten, then 24 sequential 4 KiB writes at 128 KiB flushed after
// the last checkpoint (copied as a crash leaves it, owner lock freed).
const (
	v3LiveSHA256 = "f6d595ab58e3f257433eefc76ff89211a055ebe33eaa3b3cf467545a5c6b4ce4"
	v3SnapSHA256 = "7cf3cf84d63cd761dffaf310deb205bc35a7b7d49775f389842d710b1d773183"
)

// TestFormat3VolumeOpensWithRunExtents opens a volume whose checkpoints
// are version 3: it reads the same, replaying its log joins the sequential
// 4 KiB records written after the checkpoint into one run extent (the rule
// the live path applies), gc cleans and defragments it, its next
// checkpoint is version 4, and it reads the same after a restart and
// passes fsck. Its old segments keep their unseeded records (versions 1 and
// 3); the segments this binary adds, a write's and gc's, hold version 4
// records only.
func TestFormat3VolumeOpensWithRunExtents(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join("testdata", "v3store"))))
	st, err := objstore.NewDirStore(dir)
	require.NoError(t, err)
	newestVersion := func() uint16 {
		t.Helper()
		ps, err := listCheckpoints(st, "v3")
		require.NoError(t, err)
		require.NotEmpty(t, ps)
		b, err := readObject(st, ckptName("v3", ps[len(ps)-1]))
		require.NoError(t, err)
		return binary.LittleEndian.Uint16(b[4:])
	}
	require.Equal(t, uint16(3), newestVersion())
	oldSegs, err := listSegments(st, "v3")
	require.NoError(t, err)
	check := func(v *Volume, what string) { t.Helper(); checkLiveAndS1(t, v, v3LiveSHA256, v3SnapSHA256, what) }
	v := openChecked(t, st, "v3", Options{})
	check(v, "as written by format 3")
	v.mu.RLock()
	run, ok := v.mu.m.Floor(128 << 10)
	v.mu.RUnlock()
	require.True(t, ok)
	require.True(t, run.Run(), "the replayed sequential writes are one run extent: %+v", run)
	require.Equal(t, blockmap.Extent{Off: 128 << 10, Length: 24 * 4096}, blockmap.Extent{Off: run.Off, Length: run.Length})
	// A write of the bytes there already: a data record in a new segment.
	p := make([]byte, 4096)
	require.NoError(t, v.ReadAt(p, 8192))
	require.NoError(t, v.WriteAt(p, 8192, true))
	requireRecordVersions(t, st, "v3", oldSegs)
	_, err = v.GC(GCOptions{Defrag: DefragAll})
	require.NoError(t, err)
	checkBooks(t, v)
	check(v, "after gc")
	require.NoError(t, v.Close())
	require.Equal(t, uint16(ckptVersion), newestVersion())
	requireRecordVersions(t, st, "v3", oldSegs)
	reopenAndFsck(t, st, "v3", check)
}

// requireRecordVersions checks the record versions of vol's segments: those
// in old (written by an older binary) hold unseeded records only, the
// others version 4 records only, valid in their own segment alone. At least
// one segment must be new.
func requireRecordVersions(t *testing.T, st objstore.Store, vol string, old []uint64) {
	t.Helper()
	segs, err := listSegments(st, vol)
	require.NoError(t, err)
	fresh := 0
	for _, seq := range segs {
		buf, err := readObject(st, segName(vol, seq))
		require.NoError(t, err)
		_, err = segment.DecodeSegmentHeader(buf, seq)
		require.NoError(t, err, "segment %d", seq)
		isOld := slices.Contains(old, seq)
		if !isOld {
			fresh++
			_, err = segment.DecodeSegmentHeader(buf, seq+1)
			require.ErrorIs(t, err, segment.ErrCorrupt, "segment %d's header read as the next segment's", seq)
		}
		for off := 0; off < len(buf); {
			h, _, err := segment.Decode(buf[off:], seq)
			require.NoError(t, err, "segment %d offset %d", seq, off)
			if isOld {
				require.Less(t, h.Version, uint8(segment.VersionSeeded), "segment %d offset %d", seq, off)
			} else {
				require.EqualValues(t, segment.VersionSeeded, h.Version, "segment %d offset %d", seq, off)
			}
			off += h.RecordLen()
		}
	}
	require.Positive(t, fresh, "no segment written by this binary")
}
