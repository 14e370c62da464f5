package main

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hlfs/hlfs/lfs"
)

// TestLocateLocal: on a local store this host ($HLFS_HOSTNAME) holds every
// byte of the volume's segments.
func TestLocateLocal(t *testing.T) {
	store, dir := testStore(t)
	t.Setenv("HLFS_HOSTNAME", "host-a")
	if err := lfs.Create(dirStore(t, dir), "vm1", lfs.Config{Size: 4 << 20, SegmentSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	img := make([]byte, 3<<20)
	rand.New(rand.NewSource(1)).Read(img)
	src := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(src, img, 0o644); err != nil {
		t.Fatal(err)
	}
	mustHLFS(t, store, "import", src, "vm1")
	segBytes, segs := segmentFiles(t, dir, "vm1")
	if segs < 3 {
		t.Fatalf("%d segments, want several", segs)
	}
	var rep locateReport
	out := mustHLFS(t, store, "locate", "vm1", "--json")
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("locate --json printed %q: %v", out, err)
	}
	want := locateReport{Volume: "vm1", Objects: segs, StoredBytes: segBytes,
		Hosts: []hostBytes{{Host: "host-a", Bytes: segBytes, Share: 1}}}
	if rep.Volume != want.Volume || rep.Objects != want.Objects || rep.StoredBytes != want.StoredBytes ||
		rep.UnlocatedBytes != 0 || len(rep.Hosts) != 1 || rep.Hosts[0] != want.Hosts[0] {
		t.Errorf("locate --json: %+v, want %+v", rep, want)
	}
	out = mustHLFS(t, store, "locate", "vm1")
	for _, line := range []string{fmt.Sprintf("vm1: %s in %d segments\n", sizeString(segBytes), segs),
		"HOST    HOSTNAME  BYTES    SHARE\n", "host-a  -         3.0 MiB  100.0%\n"} {
		if !strings.Contains(out, line) {
			t.Errorf("locate output lacks %q:\n%s", line, out)
		}
	}

	// An empty volume: no segments, no hosts to prefer... but this one.
	mustHLFS(t, store, "create", "empty", "--size", "1M")
	if out := mustHLFS(t, store, "locate", "empty", "--json"); !strings.Contains(out, `"stored_bytes": 0`) || !strings.Contains(out, `"host": "host-a"`) {
		t.Errorf("locate of an empty volume:\n%s", out)
	}

	wantError(t, hlfs(t, store, "locate"), 2, "locate: missing VOLUME")
	wantError(t, hlfs(t, store, "locate", "nope"), 1, `no volume "nope" in store `+store)
	wantError(t, hlfs(t, store, "locate", "vm1", "--webhdfs"), 2, "--webhdfs")
}
