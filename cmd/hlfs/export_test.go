package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hlfs/hlfs/lfs"
)

// holesSupported reports whether the temporary directory keeps image sparse.
func holesSupported(t *testing.T, image string) bool {
	fi, err := os.Stat(image)
	if err != nil {
		t.Fatal(err)
	}
	return allocated(t, image) < fi.Size()/2
}

func TestImportExportRoundTrip(t *testing.T) {
	store, dir := testStore(t)
	image, want := sparseImage(t)
	mustHLFS(t, store, "create", "demo", "--size", "17M", "--compress")
	mustHLFS(t, store, "import", image, "demo")

	out := filepath.Join(t.TempDir(), "out.raw")
	if err := os.WriteFile(out, bytes.Repeat([]byte{0xff}, 40*mib), 0o644); err != nil {
		t.Fatal(err) // an existing, longer file is replaced
	}
	if stdout := mustHLFS(t, store, "export", "demo", out); stdout != "" {
		t.Errorf("export printed %q", stdout)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 17*mib {
		t.Fatalf("exported %d bytes, want the volume size %d", len(got), 17*mib)
	}
	if !bytes.Equal(got[:len(want)], want) || !isZero(got[len(want):]) {
		t.Fatal("exported image differs from the imported one")
	}
	if !bytes.Equal(got, readVolume(t, dir, "demo")) {
		t.Fatal("exported image differs from the volume")
	}

	if !holesSupported(t, image) {
		t.Skip("the temporary file system does not keep files sparse")
	}
	// The data is 2.5 MiB and a few bytes; the holes and the allocated
	// zeros of the source stay unallocated.
	if n := allocated(t, out); n > 3*mib {
		t.Errorf("exported file occupies %d bytes for 2.5 MiB of data", n)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const seekHole = 4
	if hole, err := f.Seek(0, seekHole); err != nil || hole != 0 {
		t.Errorf("SEEK_HOLE from 0 = %d, %v; want a hole at 0", hole, err)
	}
	if hole, err := f.Seek(1*mib, seekHole); err != nil || hole != 2*mib {
		t.Errorf("SEEK_HOLE from 1 MiB = %d, %v; want 2 MiB", hole, err)
	}
}

// A served volume can be exported: export does not take it over.
func TestExportWhileServed(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "demo", "--size", "1M")
	v, err := lfs.Open(dirStore(t, dir), "demo", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.WriteAt(bytes.Repeat([]byte("x"), 4096), 8192, true); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.raw")
	mustHLFS(t, store, "export", "demo", out)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != mib || got[8192] != 'x' || got[8191] != 0 || got[12288] != 0 {
		t.Errorf("exported %d bytes, wrong contents", len(got))
	}
}

func TestExportErrors(t *testing.T) {
	store, _ := testStore(t)
	mustHLFS(t, store, "create", "demo", "--size", "1M")
	tmp := t.TempDir()
	missing := filepath.Join(tmp, "never")
	wantError(t, hlfs(t, store, "export", "nope", missing), 1, `no volume "nope"`)
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a failed export left %s behind", missing)
	}
	wantError(t, hlfs(t, store, "export", "demo", tmp), 1, "not a regular file")
	wantError(t, hlfs(t, store, "export", "demo", filepath.Join(tmp, "no", "dir")), 1, "no such file or directory")
	wantError(t, hlfs(t, store, "export", "demo"), 2, "missing FILE")
	wantError(t, hlfs(t, store, "export", "demo@snap", missing), 1, `no snapshot "snap" of volume demo`)
}

// An interrupted export fails with one line and leaves no new file behind.
func TestExportInterrupted(t *testing.T) {
	store, _ := testStore(t)
	mustHLFS(t, store, "create", "demo", "--size", "1M")
	out := filepath.Join(t.TempDir(), "out.raw")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	c := newCLI(ctx, &stdout, &stderr, func(string) string { return "" })
	code := c.main([]string{"--store", store, "export", "demo", out})
	wantError(t, result{code, stdout.String(), stderr.String()}, 1, "interrupted")
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("interrupted export left %s: %v", out, err)
	}
}
