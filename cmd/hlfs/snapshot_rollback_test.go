package main

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/hlfs/hlfs/lfs"
)

func TestSnapshotRollback(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	writeVolume(t, dir, "vm1", 0, fill("one", 8192))
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	writeVolume(t, dir, "vm1", 4096, fill("two", 8192))
	mustHLFS(t, store, "snapshot", "create", "vm1@s2")
	writeVolume(t, dir, "vm1", 0, fill("three", 4096))

	if out := mustHLFS(t, store, "snapshot", "rollback", "vm1@s1"); out != "rolled back vm1 to vm1@s1\n" {
		t.Errorf("stdout %q", out)
	}
	want := make([]byte, 1<<20)
	copy(want, fill("one", 8192))
	if got := readVolume(t, dir, "vm1"); !bytes.Equal(got, want) {
		t.Error("the volume does not read as s1 after the rollback")
	}
	// Later snapshots are kept, and the volume can go forward again.
	mustHLFS(t, store, "snapshot", "rollback", "vm1@s2")
	copy(want[4096:], fill("two", 8192))
	if got := readVolume(t, dir, "vm1"); !bytes.Equal(got, want) {
		t.Error("the volume does not read as s2 after rolling back to it")
	}
	if info := statVolume(t, dir, "vm1"); info.Owner != nil {
		t.Errorf("vm1 still owned after rollback: %+v", info.Owner)
	}
	mustHLFS(t, store, "fsck", "vm1")
}

func TestSnapshotRollbackErrors(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	wantError(t, hlfs(t, store, "snapshot", "rollback", "vm1@nope"), 1, `no snapshot "nope" of volume vm1`)
	wantError(t, hlfs(t, store, "snapshot", "rollback", "nope@s1"), 1, `no volume "nope"`)
	wantError(t, hlfs(t, store, "snapshot", "rollback"), 2, "missing VOLUME@SNAPSHOT")

	v, err := lfs.Open(dirStore(t, dir), "vm1", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	host, _ := os.Hostname()
	wantError(t, hlfs(t, store, "snapshot", "rollback", "vm1@s1"), 1,
		fmt.Sprintf("cannot roll back vm1 while it is served by pid %d on host %s; stop serving it first", os.Getpid(), host))
}
