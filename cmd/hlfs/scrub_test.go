package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hlfs/hlfs/lfs"
)

// flipSegmentByte flips a bit of byte off of the first segment of vol.
func flipSegmentByte(t *testing.T, dir, vol string, off int64) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, vol, "seg", "*"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments: %v, %v", segs, err)
	}
	f, err := os.OpenFile(segs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestScrub(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "4M")
	writeVolume(t, dir, "vm1", 0, fill("scrub", 1<<20)) // 16 records of 64 KiB
	out := mustHLFS(t, store, "scrub", "vm1")
	if out != "scrub vm1: 16 records, 1.0 MiB verified: no damage\n" {
		t.Errorf("scrub of an intact volume: %q", out)
	}
	// Payload byte 70000 of the second record: its block 1 (volume bytes
	// 65536+4096 .. +8191).
	flipSegmentByte(t, dir, "vm1", 80+(32+65536+64)+32+5000)
	r := hlfs(t, store, "scrub", "vm1")
	wantError(t, r, 1, "vm1 is damaged: 1 damaged range found by scrub")
	if !strings.Contains(r.stdout, "vm1: damaged: vm1/seg/0000000000000001 offset") ||
		!strings.Contains(r.stdout, "read by vm1 bytes 69632-73727") ||
		!strings.HasSuffix(r.stdout, "scrub vm1: 16 records, 1.0 MiB verified: 1 damaged range\n") {
		t.Errorf("scrub of a damaged volume:\n%s", r.stdout)
	}
	r = hlfs(t, store, "scrub", "vm1", "--json", "--rate", "64M")
	var rep lfs.ScrubReport
	if r.code != 1 || json.Unmarshal([]byte(r.stdout), &rep) != nil || len(rep.Damaged) != 1 ||
		len(rep.Damaged[0].ReadBy) != 1 || rep.Damaged[0].ReadBy[0] != (lfs.DamagedRead{Name: "vm1", Offset: 69632, Length: 4096}) {
		t.Errorf("scrub --json: exit %d, %q", r.code, r.stdout)
	}
	wantError(t, hlfs(t, store, "scrub", "vm1", "--rate", "fast"), 2, "--rate")
	wantError(t, hlfs(t, store, "scrub", "nope"), 1, `no volume "nope"`)
}

// TestScrubWhileServed: the serving process scrubs on request, and serve
// refuses a bad --scrub-interval.
func TestScrubWhileServed(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "4M")
	writeVolume(t, dir, "vm1", 0, fill("scrub", 1<<20))
	flipSegmentByte(t, dir, "vm1", 80+32+100)
	adminSock := filepath.Join(t.TempDir(), "admin.sock")
	_, stderr, stop := startServe(t, store, "vm1", "--listen", "127.0.0.1:0", "--admin-socket", adminSock, "--no-gc",
		"--scrub-interval", "1d", "vm1")
	r := hlfs(t, store, "scrub", "vm1")
	wantError(t, r, 1, "vm1 is damaged: 1 damaged range")
	if !strings.Contains(r.stdout, "read by vm1 bytes 0-4095") {
		t.Errorf("scrub through the server:\n%s", r.stdout)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "scrubbed vm1 on request") {
		t.Errorf("the server did not scrub:\n%s", stderr.String())
	}
	wantError(t, hlfs(t, store, "serve", "--scrub-interval", "often", "vm1"), 2, "--scrub-interval")
}
