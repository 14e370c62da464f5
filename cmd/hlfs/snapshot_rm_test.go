package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hlfs/hlfs/lfs"
)

func TestSnapshotRm(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	writeVolume(t, dir, "vm1", 0, fill("a", 4096))
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	mustHLFS(t, store, "snapshot", "create", "vm1@s2")
	if out := mustHLFS(t, store, "snapshot", "rm", "vm1@s1"); out != "removed snapshot vm1@s1\n" {
		t.Errorf("stdout %q", out)
	}
	snaps, err := lfs.ListSnapshots(dirStore(t, dir), "vm1")
	if err != nil || len(snaps) != 1 || snaps[0].Name != "s2" || snaps[0].Parent != "" {
		t.Errorf("snapshots after rm: %+v, %v", snaps, err)
	}
	if got := readVolume(t, dir, "vm1"); string(got[:4096]) != string(fill("a", 4096)) {
		t.Error("snapshot rm changed the volume")
	}
	// The name can be taken again.
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	mustHLFS(t, store, "fsck", "vm1")
}

func TestSnapshotRmErrors(t *testing.T) {
	store, _ := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	wantError(t, hlfs(t, store, "snapshot", "rm", "vm1@nope"), 1, `no snapshot "nope" of volume vm1`, "hlfs snapshot ls vm1")
	wantError(t, hlfs(t, store, "snapshot", "rm", "nope@s1"), 1, `no volume "nope"`)
	wantError(t, hlfs(t, store, "snapshot", "rm"), 2, "missing VOLUME@SNAPSHOT")

	// Clones depend on it: refused, naming them, until they are gone.
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	mustHLFS(t, store, "clone", "vm1@s1", "c1")
	mustHLFS(t, store, "clone", "vm1@s1", "c2")
	r := hlfs(t, store, "snapshot", "rm", "vm1@s1")
	wantError(t, r, 1, "vm1@s1", "c1, c2", "flatten or remove them first")
	if strings.Contains(r.stderr, "clones depend on it: ") {
		t.Errorf("the sentinel's words repeat the message: %q", r.stderr)
	}
	// The volume itself cannot go either.
	wantError(t, hlfs(t, store, "rm", "vm1"), 1, "c1, c2")
	mustHLFS(t, store, "rm", "c1")
	mustHLFS(t, store, "flatten", "c2")
	mustHLFS(t, store, "snapshot", "rm", "vm1@s1")
}

// While served, rm goes through the admin socket and keeps refusing while
// clones depend on the snapshot.
func TestSnapshotRmWhileServed(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	mustHLFS(t, store, "snapshot", "create", "vm1@s2")
	mustHLFS(t, store, "clone", "vm1@s2", "c1")
	sock := filepath.Join(t.TempDir(), "admin.sock")
	addr, stderr, stop := startServe(t, store, "vm1", "--listen", "127.0.0.1:0", "--admin-socket", sock, "vm1", "vm1@s1", "vm1@s2")

	wantError(t, hlfs(t, store, "snapshot", "rm", "vm1@s2"), 1, "vm1@s2", "c1", "flatten or remove them first")
	wantError(t, hlfs(t, store, "snapshot", "rm", "vm1@zz"), 1, `no snapshot "zz" of volume vm1`)
	mustHLFS(t, store, "snapshot", "rm", "vm1@s1")
	c := dialNBD(t, "tcp", addr)
	if names := c.list(); strings.Join(names, ",") != "vm1,vm1@s2" {
		t.Errorf("LIST after rm = %q", names)
	}
	c.conn.Close()
	if code := stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	snaps, err := lfs.ListSnapshots(dirStore(t, dir), "vm1")
	if err != nil || len(snaps) != 1 || snaps[0].Name != "s2" {
		t.Errorf("snapshots after serve: %+v, %v", snaps, err)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("admin socket left behind: %v", err)
	}
}
