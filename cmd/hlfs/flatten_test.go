package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/hlfs/hlfs/lfs"
)

func TestFlatten(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "4M")
	writeVolume(t, dir, "vm1", 0, fill("src", 3<<20))
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	mustHLFS(t, store, "clone", "vm1@s1", "c1")
	writeVolume(t, dir, "c1", 1<<20, fill("own", 4096))
	want := readVolume(t, dir, "c1")

	r := hlfs(t, store, "flatten", "c1")
	if r.code != 0 || r.stdout != "flattened c1: it no longer depends on vm1@s1\n" || r.stderr != "" {
		t.Fatalf("flatten: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if got := readVolume(t, dir, "c1"); !bytes.Equal(got, want) {
		t.Error("the clone reads differently after flatten")
	}
	if info := statVolume(t, dir, "c1"); info.Source != "" {
		t.Errorf("source after flatten: %q", info.Source)
	}
	if out := mustHLFS(t, store, "info", "c1"); strings.Contains(out, "clone of:") {
		t.Errorf("info after flatten:\n%s", out)
	}
	// The snapshot, and even the source, can go now; the clone stays.
	mustHLFS(t, store, "snapshot", "rm", "vm1@s1")
	mustHLFS(t, store, "rm", "vm1")
	if got := readVolume(t, dir, "c1"); !bytes.Equal(got, want) {
		t.Error("the flattened clone depends on its removed source")
	}
	mustHLFS(t, store, "fsck", "c1")
}

func TestFlattenErrors(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	wantError(t, hlfs(t, store, "flatten", "vm1"), 1, "vm1 is not a clone: nothing to flatten")
	wantError(t, hlfs(t, store, "flatten", "nope"), 1, `no volume "nope"`)
	wantError(t, hlfs(t, store, "flatten"), 2, "missing VOLUME")

	writeVolume(t, dir, "vm1", 0, fill("a", 4096))
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	mustHLFS(t, store, "clone", "vm1@s1", "c1")
	// A clone of the clone reads through it.
	mustHLFS(t, store, "snapshot", "create", "c1@cs")
	mustHLFS(t, store, "clone", "c1@cs", "c2")
	wantError(t, hlfs(t, store, "flatten", "c1"), 1, "c2")
	mustHLFS(t, store, "rm", "c2")
	// Its own snapshot shares data with the source.
	wantError(t, hlfs(t, store, "flatten", "c1"), 1, "cs", "remove it first")
	mustHLFS(t, store, "snapshot", "rm", "c1@cs")

	// Served: refused, naming the server.
	v, err := lfs.Open(dirStore(t, dir), "c1", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	wantError(t, hlfs(t, store, "flatten", "c1"), 1,
		fmt.Sprintf("cannot flatten c1 while it is served by pid %d on host %s; stop serving it first", os.Getpid(), host))
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	mustHLFS(t, store, "flatten", "c1")
}
