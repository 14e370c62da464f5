package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hlfs/hlfs/lfs"
)

// du runs "du VOLUME --json", checks that its numbers agree with each other
// and with the segment files in dir, and returns them.
func du(t *testing.T, store, dir, name string) lfs.Usage {
	t.Helper()
	var u lfs.Usage
	out := mustHLFS(t, store, "du", name, "--json")
	if err := json.Unmarshal([]byte(out), &u); err != nil {
		t.Fatalf("du --json printed %q: %v", out, err)
	}
	segBytes, segs := segmentFiles(t, dir, name)
	switch {
	case u.Name != name:
		t.Errorf("du %s names %q", name, u.Name)
	case u.SegmentBytes != segBytes || u.Segments != segs:
		t.Errorf("du: %d bytes in %d segments, the store holds %d in %d", u.SegmentBytes, u.Segments, segBytes, segs)
	case u.Stored != u.SegmentBytes+u.MetadataBytes:
		t.Errorf("du: stored %d is not segments %d + metadata %d", u.Stored, u.SegmentBytes, u.MetadataBytes)
	case u.Live > u.SegmentBytes || u.Mapped > u.Live || u.Mapped > u.Provisioned:
		t.Errorf("du: mapped %d, live %d, segments %d, provisioned %d", u.Mapped, u.Live, u.SegmentBytes, u.Provisioned)
	case u.Garbage != u.SegmentBytes-u.Live:
		t.Errorf("du: garbage %d is not segments %d - live %d", u.Garbage, u.SegmentBytes, u.Live)
	case u.ReclaimBlocked < 0 || u.ReclaimBlocked > u.Garbage:
		t.Errorf("du: reclaim blocked %d of garbage %d", u.ReclaimBlocked, u.Garbage)
	}
	return u
}

func TestDu(t *testing.T) {
	store, dir := testStore(t)
	if err := lfs.Create(dirStore(t, dir), "vm1", lfs.Config{Size: 8 << 20, SegmentSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	// Empty: no snapshots is [], not null.
	out := mustHLFS(t, store, "du", "vm1", "--json")
	if !strings.Contains(out, `"snapshots": []`) {
		t.Errorf("du --json of a volume without snapshots:\n%s", out)
	}
	if u := du(t, store, dir, "vm1"); u.Provisioned != 8<<20 || u.Mapped != 0 || u.Live != 0 || u.Stored != u.MetadataBytes {
		t.Errorf("du of an empty volume: %+v", u)
	}
	out = mustHLFS(t, store, "du", "vm1")
	for _, want := range []string{
		"name:            vm1\n",
		"provisioned:     8 MiB (8388608 bytes)\n",
		"mapped:          0 bytes\n",
		"live:            0 bytes\n",
		"garbage:         0 bytes\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("du lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "snapshot") {
		t.Errorf("du of a volume without snapshots shows one:\n%s", out)
	}

	writeVolume(t, dir, "vm1", 0, fill("old", 2<<20))
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	u := du(t, store, dir, "vm1")
	if u.Mapped != 2<<20 || u.Live != 2<<20 || len(u.Snapshots) != 1 || u.Snapshots[0] != (lfs.SnapshotUsage{Name: "s1"}) {
		t.Errorf("du after a snapshot of 2 MiB: %+v", u)
	}

	// Overwritten under the snapshot: the old bytes are the snapshot's alone.
	writeVolume(t, dir, "vm1", 0, fill("new", 1<<20))
	u = du(t, store, dir, "vm1")
	if u.Mapped != 2<<20 || u.Live != 3<<20 || u.Snapshots[0].ExclusiveBytes != 1<<20 {
		t.Errorf("du after overwriting 1 MiB under a snapshot: %+v", u)
	}
	out = mustHLFS(t, store, "du", "vm1")
	for _, want := range []string{
		"mapped:          2 MiB (2097152 bytes)\n",
		"live:            3 MiB (3145728 bytes)\n",
		fmt.Sprintf("stored:          %s: ", sizeString(u.Stored)),
		fmt.Sprintf(" in %d segments, ", u.Segments),
		"snapshot s1:     1 MiB (1048576 bytes) exclusive\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("du lacks %q:\n%s", want, out)
		}
	}

	// Once the snapshot is gone its bytes are garbage, which gc reclaims.
	mustHLFS(t, store, "snapshot", "rm", "vm1@s1")
	before := du(t, store, dir, "vm1")
	if before.Live != 2<<20 || len(before.Snapshots) != 0 || before.Garbage < 1<<20 {
		t.Errorf("du after snapshot rm: %+v", before)
	}
	mustHLFS(t, store, "gc", "vm1")
	after := du(t, store, dir, "vm1")
	if after.Live != 2<<20 || after.Mapped != 2<<20 || after.Stored >= before.Stored || after.Garbage > before.Garbage-(1<<20) {
		t.Errorf("du after gc: %+v; before: %+v", after, before)
	}
	if got := readVolume(t, dir, "vm1"); !bytes.Equal(got[:1<<20], fill("new", 1<<20)) || !bytes.Equal(got[1<<20:2<<20], fill("old", 2<<20)[1<<20:]) {
		t.Error("the volume reads differently after gc")
	}
}

// du reads a served volume without disturbing its server.
func TestDuWhileServed(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "4M")
	addr, stderr, stop := startServe(t, store, "vm1", "--listen", "127.0.0.1:0", "--admin-socket", "none", "--no-gc", "vm1")
	c := dialNBD(t, "tcp", addr)
	if _, errType := c.goExport("vm1"); errType != 0 {
		t.Fatalf("GO vm1: %#x", errType)
	}
	data := fill("served", 1<<20)
	if errno, _ := c.request(nbdCmdWrite, 0, len(data), data); errno != 0 {
		t.Fatalf("WRITE: errno %d", errno)
	}
	if errno, _ := c.request(nbdCmdFlush, 0, 0, nil); errno != 0 {
		t.Fatalf("FLUSH: errno %d", errno)
	}
	// What a flush made durable, du sees.
	if u := du(t, store, dir, "vm1"); u.Mapped != 1<<20 || u.Live != 1<<20 {
		t.Errorf("du of a served volume: %+v", u)
	}
	if errno, got := c.request(nbdCmdRead, 0, len(data), nil); errno != 0 || !bytes.Equal(got, data) {
		t.Errorf("READ after du: errno %d", errno)
	}
	c.conn.Close()
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, stderr.String())
	}
}

func TestDuErrors(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	wantError(t, hlfs(t, store, "du"), 2, "du: missing VOLUME", "'hlfs help du'")
	wantError(t, hlfs(t, store, "du", "vm1", "vm2"), 2, `du: unexpected argument "vm2"`)
	wantError(t, hlfs(t, store, "du", "vm1", "--human"), 2, "du: unknown flag --human")
	wantError(t, hlfs(t, store, "du", "nope"), 1, `no volume "nope" in store `+store)
	wantError(t, hlfs(t, store, "du", "a/b"), 1, `invalid volume name "a/b"`)
	wantError(t, hlfs(t, store, "du", "vm1@s1"), 1, "vm1@s1 is a snapshot, not a volume")
	wantError(t, hlfs(t, store, "--store", "file://"+filepath.Join(dir, "missing"), "du", "vm1"), 1, "missing does not exist")
}
