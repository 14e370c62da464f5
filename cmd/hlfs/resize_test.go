package main

import (
	"testing"

	"github.com/hlfs/hlfs/lfs"
)

func TestResize(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "demo", "--size", "1G")
	if out := mustHLFS(t, store, "resize", "demo", "--size", "2G"); out != "resized demo from 1 GiB to 2 GiB\n" {
		t.Errorf("stdout %q", out)
	}
	if info := statVolume(t, dir, "demo"); info.Size != 2<<30 {
		t.Errorf("size %d after growing", info.Size)
	}
	wantError(t, hlfs(t, store, "resize", "demo", "--size", "1G"), 1, "shrink", "--allow-shrink")
	if info := statVolume(t, dir, "demo"); info.Size != 2<<30 {
		t.Errorf("size %d after a refused shrink", info.Size)
	}
	mustHLFS(t, store, "resize", "--allow-shrink", "demo", "--size", "512M")
	if info := statVolume(t, dir, "demo"); info.Size != 512<<20 {
		t.Errorf("size %d after shrinking", info.Size)
	}
	if out := mustHLFS(t, store, "resize", "demo", "--size", "512M"); out != "demo is already 512 MiB\n" {
		t.Errorf("resize to the same size: %q", out)
	}
}

func TestResizeErrors(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "demo", "--size", "1M", "--block-size", "64K")
	wantError(t, hlfs(t, store, "resize", "nope", "--size", "1G"), 1, `no volume "nope"`)
	wantError(t, hlfs(t, store, "resize", "demo"), 2, "--size is required")
	wantError(t, hlfs(t, store, "resize", "demo", "--size", "0"), 2, "greater than zero")
	wantError(t, hlfs(t, store, "resize", "demo", "--size", "1028K"), 1, "not a multiple of the block size 64 KiB")
	wantError(t, hlfs(t, store, "resize", "a/b", "--size", "1G"), 1, "invalid volume name")

	vol, err := lfs.Open(dirStore(t, dir), "demo", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer vol.Close()
	wantError(t, hlfs(t, store, "resize", "demo", "--size", "2M"), 1, "in use")
}
