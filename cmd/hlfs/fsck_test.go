package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hlfs/hlfs/lfs"
)

func TestFsckFresh(t *testing.T) {
	store, _ := testStore(t)
	mustHLFS(t, store, "create", "demo", "--size", "1G")
	out := mustHLFS(t, store, "fsck", "demo")
	if !strings.HasSuffix(out, "demo: ok\n") || !strings.HasPrefix(out, "demo: checked 0 segments") {
		t.Errorf("fsck output %q", out)
	}
}

func TestFsckDamaged(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "demo", "--size", "4M")
	v, err := lfs.Open(dirStore(t, dir), "demo", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := v.WriteAt(bytes.Repeat([]byte{byte(i + 1)}, 64<<10), int64(i)<<20, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	out := mustHLFS(t, store, "fsck", "demo")
	if !strings.HasSuffix(out, "demo: ok\n") || strings.Contains(out, "checked 0 segments") {
		t.Fatalf("fsck of a written volume: %q", out)
	}

	// Flip a byte in the middle of the first segment's data.
	segs, err := filepath.Glob(filepath.Join(dir, "demo", "seg", "*"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments: %v, %v", segs, err)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x55
	if err := os.WriteFile(segs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	r := hlfs(t, store, "fsck", "demo")
	wantError(t, r, 1, "demo is damaged", "problems found")
	if !strings.Contains(r.stdout, "demo: problem: ") {
		t.Errorf("fsck does not list the problem:\n%s", r.stdout)
	}
}

func TestFsckErrors(t *testing.T) {
	store, _ := testStore(t)
	wantError(t, hlfs(t, store, "fsck", "nope"), 1, `no volume "nope"`)
	wantError(t, hlfs(t, store, "fsck"), 2, "missing VOLUME")
	wantError(t, hlfs(t, store, "fsck", "a/b"), 1, "invalid volume name")
}

// TestFsckLostFound: what recovery set aside is damage until cleared.
func TestFsckLostFound(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "demo", "--size", "4M")
	w, err := dirStore(t, dir).Create("demo/lost+found/0000000000000002-0000000000000001")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 5000)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r := hlfs(t, store, "fsck", "demo")
	wantError(t, r, 1, "demo is damaged", "1 problems found")
	if !strings.Contains(r.stdout, "lost+found/0000000000000002-0000000000000001 (5000 bytes) was set aside") ||
		!strings.Contains(r.stdout, "hlfs fsck --clear-lost-found demo") {
		t.Errorf("fsck does not report lost+found:\n%s", r.stdout)
	}
	out := mustHLFS(t, store, "fsck", "--clear-lost-found", "demo")
	if !strings.Contains(out, "demo: removed 1 objects (4.8 KiB) from lost+found") || !strings.HasSuffix(out, "demo: ok\n") {
		t.Errorf("fsck --clear-lost-found: %q", out)
	}
}
