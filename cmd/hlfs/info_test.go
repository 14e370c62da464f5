package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/hlfs/hlfs/lfs"
)

func TestInfo(t *testing.T) {
	store, _ := testStore(t)
	mustHLFS(t, store, "create", "demo", "--size", "10G", "--compress", "--block-size", "8K")
	out := mustHLFS(t, store, "info", "demo")
	for _, want := range []string{
		"name:         demo\n",
		"size:         10 GiB (10737418240 bytes)\n",
		"block size:   8 KiB\n",
		"compress:     on\n",
		"bytes stored: ",
		"segments:     0\n",
		"created:      ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("info lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "served by") {
		t.Errorf("info of a free volume shows an owner:\n%s", out)
	}

	var v volumeJSON
	if err := json.Unmarshal([]byte(mustHLFS(t, store, "info", "demo", "--json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.Name != "demo" || v.Size != 10<<30 || v.BlockSize != 8192 || !v.Compress || v.Owner != nil || v.Created.IsZero() {
		t.Errorf("info --json: %+v", v)
	}
}

func TestInfoShowsOwner(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "demo", "--size", "1M")
	vol, err := lfs.Open(dirStore(t, dir), "demo", lfs.Options{NBD: []string{"nbd://127.0.0.1:10809"}})
	if err != nil {
		t.Fatal(err)
	}
	defer vol.Close()
	host, _ := os.Hostname()

	out := mustHLFS(t, store, "info", "demo")
	if !strings.Contains(out, "served by:") || !strings.Contains(out, host) ||
		!strings.Contains(out, "served on:    nbd://127.0.0.1:10809 (see 'hlfs attach')\n") {
		t.Errorf("info of a held volume:\n%s", out)
	}
	var v volumeJSON
	if err := json.Unmarshal([]byte(mustHLFS(t, store, "info", "--json", "demo")), &v); err != nil {
		t.Fatal(err)
	}
	if v.Owner == nil || v.Owner.PID != os.Getpid() || v.Owner.Host != host || v.Owner.Epoch == 0 ||
		strings.Join(v.Owner.NBD, " ") != "nbd://127.0.0.1:10809" {
		t.Errorf("owner %+v", v.Owner)
	}
}

func TestInfoErrors(t *testing.T) {
	store, _ := testStore(t)
	wantError(t, hlfs(t, store, "info", "nope"), 1, `no volume "nope" in store `+store)
	wantError(t, hlfs(t, store, "info", "a/b"), 1, "invalid volume name")
	wantError(t, hlfs(t, store, "info", "v@s"), 1, "is a snapshot, not a volume")
	wantError(t, hlfs(t, store, "info"), 2, "missing VOLUME")
}

// TestInfoReportsTheMapSize: extents and map_bytes of the live map, read
// while the volume is held too; sequential writes cost one extent per
// segment, scattered ones one per write.
func TestInfoReportsTheMapSize(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "demo", "--size", "64M")
	vol, err := lfs.Open(dirStore(t, dir), "demo", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer vol.Close()
	block := make([]byte, 4096)
	for i := range block {
		block[i] = byte(i) | 1
	}
	for off := int64(0); off < 4<<20; off += 4096 { // sequential, QD1
		if err := vol.WriteAt(block, off, false); err != nil {
			t.Fatal(err)
		}
	}
	for i := int64(0); i < 100; i++ { // scattered: every other block
		if err := vol.WriteAt(block, 8<<20+2*i*4096, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := vol.Flush(); err != nil {
		t.Fatal(err)
	}
	var v volumeJSON
	if err := json.Unmarshal([]byte(mustHLFS(t, store, "info", "demo", "--json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.Extents == nil || v.MapBytes == nil {
		t.Fatalf("info --json lacks extents or map_bytes: %+v", v)
	}
	if *v.Extents != 101 || *v.MapBytes != 101*48 {
		t.Errorf("info --json: %d extents, %d map bytes; want 101 (one for 4 MiB of sequential writes, 100 scattered), 4848", *v.Extents, *v.MapBytes)
	}
	if out := mustHLFS(t, store, "info", "demo"); !strings.Contains(out, "map:          101 extents, ") {
		t.Errorf("info lacks the map line:\n%s", out)
	}
}
