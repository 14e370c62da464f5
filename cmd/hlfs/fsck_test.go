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

// writeSome writes 64 KiB of 0x5a at 1 MiB into volume name and closes it,
// so that it has segments and a checkpoint.
func writeSome(t *testing.T, dir, name string) []byte {
	t.Helper()
	v, err := lfs.Open(dirStore(t, dir), name, lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{0x5a}, 64<<10)
	if err := v.WriteAt(data, 1<<20, false); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	return data
}

// A superblock cut short on a volume holding data: fsck reports it with the
// repair, and fsck --repair rebuilds it from the checkpoint and the segment
// headers (issue 10, item 2).
func TestFsckRepairsTruncatedSuperblock(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "c", "--size", "8M")
	data := writeSome(t, dir, "c")
	if err := os.Truncate(filepath.Join(dir, "c", "super"), 10); err != nil {
		t.Fatal(err)
	}
	r := hlfs(t, store, "fsck", "c")
	wantError(t, r, 1, "c is damaged")
	for _, want := range []string{"c: problem: ", "c/super is 10 bytes, want 64, but its log remains", "c: repair: 'hlfs fsck --repair c' rebuilds"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("fsck output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "checked 0 segments") {
		t.Errorf("fsck claims a check it did not make:\n%s", r.stdout)
	}

	out := mustHLFS(t, store, "fsck", "--repair", "c")
	for _, want := range []string{
		"c: rebuilt the superblock (it was damaged: its superblock c/super is 10 bytes",
		"c:   size 8 MiB (8388608 bytes): from checkpoint c/ckpt/",
		"c:   block size 4 KiB: the default (recorded nowhere else)",
		"c:   segment size 32 MiB: the default (recorded nowhere else)",
		"c:   compress off: no compressed data in the newest checkpoint or the log after it",
		"c:   uid ", ": from the segment headers and the checkpoint (first: c/seg/0000000000000001)",
		"c:   created ", ": from the header of c/seg/0000000000000001",
		"c:   replication 0: the store's default",
		"c: ok\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("fsck --repair output lacks %q:\n%s", want, out)
		}
	}
	if got := readVolume(t, dir, "c")[1<<20 : 1<<20+len(data)]; !bytes.Equal(got, data) {
		t.Error("the repaired volume does not read the data written before")
	}
	if info := statVolume(t, dir, "c"); info.Size != 8<<20 || info.BlockSize != 4096 {
		t.Errorf("repaired volume: %+v", info)
	}
	out = mustHLFS(t, store, "fsck", "--repair", "c")
	if !strings.HasPrefix(out, "c: the superblock is intact: nothing to repair\n") || !strings.HasSuffix(out, "c: ok\n") {
		t.Errorf("fsck --repair of a sound volume: %q", out)
	}
}

func TestFsckRepairErrors(t *testing.T) {
	store, dir := testStore(t)
	wantError(t, hlfs(t, store, "fsck", "--repair", "nope"), 1, `no volume "nope"`)
	mustHLFS(t, store, "create", "busy", "--size", "4M")
	writeSome(t, dir, "busy")
	v, err := lfs.Open(dirStore(t, dir), "busy", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := os.Truncate(filepath.Join(dir, "busy", "super"), 0); err != nil {
		t.Fatal(err)
	}
	wantError(t, hlfs(t, store, "fsck", "--repair", "busy"), 1, "in use")
}
