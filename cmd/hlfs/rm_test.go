package main

import (
	"os"
	"strconv"
	"testing"

	"github.com/hlfs/hlfs/lfs"
)

func TestRm(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "demo", "--size", "1M")
	mustHLFS(t, store, "create", "keep", "--size", "1M")
	if out := mustHLFS(t, store, "rm", "demo"); out != "removed demo\n" {
		t.Errorf("stdout %q", out)
	}
	names, err := lfs.List(dirStore(t, dir))
	if err != nil || len(names) != 1 || names[0] != "keep" {
		t.Errorf("volumes after rm: %v, %v", names, err)
	}
	if _, err := os.Stat(dir + "/demo"); !os.IsNotExist(err) {
		t.Errorf("volume folder left behind: %v", err)
	}
	// The name can be used again.
	mustHLFS(t, store, "create", "demo", "--size", "2M")
}

func TestRmErrors(t *testing.T) {
	store, dir := testStore(t)
	wantError(t, hlfs(t, store, "rm", "nope"), 1, `no volume "nope"`)
	wantError(t, hlfs(t, store, "rm"), 2, "missing VOLUME")
	wantError(t, hlfs(t, store, "rm", "../x"), 1, "invalid volume name")

	mustHLFS(t, store, "create", "busy", "--size", "1M")
	vol, err := lfs.Open(dirStore(t, dir), "busy", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer vol.Close()
	wantError(t, hlfs(t, store, "rm", "busy"), 1, "in use", "pid "+strconv.Itoa(os.Getpid()))
	statVolume(t, dir, "busy") // still there
}
