package main

import (
	"bytes"
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hlfs/hlfs/lfs"
)

const mib = 1 << 20

// sparseImage writes a 16 MiB + 512 B image: random data at 1-2 MiB and
// 9.5-11 MiB, allocated zeros at 4-5 MiB, a few bytes at the very end and
// holes elsewhere. It returns the path and the contents.
func sparseImage(t *testing.T) (string, []byte) {
	t.Helper()
	const size = 16*mib + 512
	want := make([]byte, size)
	rng := rand.New(rand.NewSource(1))
	rng.Read(want[1*mib : 2*mib])
	rng.Read(want[9*mib+mib/2 : 11*mib])
	copy(want[size-3:], "end")
	path := filepath.Join(t.TempDir(), "image.raw")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range [][2]int{{1 * mib, 2 * mib}, {4 * mib, 5 * mib}, {9*mib + mib/2, 11 * mib}, {size - 3, size}} {
		if _, err := f.WriteAt(want[r[0]:r[1]], int64(r[0])); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return path, want
}

// allocated returns the bytes of disk a file occupies.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// readVolume returns the whole contents of a volume.
func readVolume(t *testing.T, dir, name string) []byte {
	t.Helper()
	v, err := lfs.Open(dirStore(t, dir), name, lfs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	b := make([]byte, v.Size())
	if err := v.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestImport(t *testing.T) {
	store, dir := testStore(t)
	image, want := sparseImage(t)
	mustHLFS(t, store, "create", "demo", "--size", "32M")
	// Data already in the volume is replaced, even past the image's end.
	v, err := lfs.Open(dirStore(t, dir), "demo", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte{0xee}, 3*mib)
	for _, off := range []int64{6 * mib, 20 * mib} {
		if err := v.WriteAt(junk, off, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}

	if out := mustHLFS(t, store, "import", image, "demo"); out != "" {
		t.Errorf("import printed %q", out)
	}
	got := readVolume(t, dir, "demo")
	if !bytes.Equal(got[:len(want)], want) {
		t.Error("volume does not read as the image")
	}
	if !isZero(got[len(want):]) {
		t.Error("volume past the image's end is not zero")
	}
	// Thin: the 2.5 MiB of data and a little overhead, not the allocated
	// zeros, holes or the overwritten junk.
	if info := statVolume(t, dir, "demo"); info.BytesStored > 3*mib+6*mib+mib/2 {
		t.Errorf("volume stores %d bytes for 2.5 MiB of image data", info.BytesStored)
	}
	mustHLFS(t, store, "fsck", "demo")
}

// A small image in a big volume stores about the image's data: the rest of
// the volume becomes holes, not data.
func TestImportStaysThin(t *testing.T) {
	store, dir := testStore(t)
	image, _ := sparseImage(t)
	mustHLFS(t, store, "create", "demo", "--size", "1G")
	mustHLFS(t, store, "import", image, "demo")
	first := statVolume(t, dir, "demo").BytesStored
	if first > 3*mib {
		t.Errorf("importing 2.5 MiB of data into a 1 GiB volume stored %d bytes", first)
	}
}

func TestImportErrors(t *testing.T) {
	store, _ := testStore(t)
	image, _ := sparseImage(t)
	mustHLFS(t, store, "create", "small", "--size", "8M")
	wantError(t, hlfs(t, store, "import", image, "small"), 1,
		"larger than volume small (8 MiB)", "hlfs resize small --size 16781312")
	wantError(t, hlfs(t, store, "import", image, "nope"), 1, `no volume "nope"`)
	wantError(t, hlfs(t, store, "import", filepath.Join(t.TempDir(), "missing"), "small"), 1, "no such file")
	wantError(t, hlfs(t, store, "import", image), 2, "missing VOLUME")
	wantError(t, hlfs(t, store, "import"), 2, "missing FILE and VOLUME")
	wantError(t, hlfs(t, store, "import", image, "small@s"), 1, "is a snapshot, not a volume")
	wantError(t, hlfs(t, store, "import", image, "../x"), 1, "invalid volume name")
}

func TestIsZero(t *testing.T) {
	for n := range 20 {
		b := make([]byte, n)
		if !isZero(b) {
			t.Fatalf("isZero(%d zeros) = false", n)
		}
		for i := range b {
			b[i] = 1
			if isZero(b) {
				t.Fatalf("isZero with byte %d of %d set = true", i, n)
			}
			b[i] = 0
		}
	}
}

// An interrupted import stops with one line and releases the volume.
func TestImportInterrupted(t *testing.T) {
	store, dir := testStore(t)
	image, _ := sparseImage(t)
	mustHLFS(t, store, "create", "demo", "--size", "32M")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	c := newCLI(ctx, &stdout, &stderr, func(string) string { return "" })
	code := c.main([]string{"--store", store, "import", image, "demo"})
	wantError(t, result{code, stdout.String(), stderr.String()}, 1, "interrupted")
	if info := statVolume(t, dir, "demo"); info.Owner != nil {
		t.Errorf("demo still owned: %+v", info.Owner)
	}
}
