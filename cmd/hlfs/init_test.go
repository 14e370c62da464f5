package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "store")
	store := "file://" + dir
	if out := mustHLFS(t, store, "init"); out != "created store "+store+"\n" {
		t.Errorf("init: stdout %q", out)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("init made no directory: %v", err)
	}
	if out := mustHLFS(t, store, "init"); out != "store "+store+" exists\n" {
		t.Errorf("init again: stdout %q", out)
	}
	if out := mustHLFS(t, store, "ls"); out != "NAME  SIZE  STORED  SEGMENTS  SOURCE  CLONES  SERVED BY\n" {
		t.Errorf("ls of the new store: %q", out)
	}
	wantError(t, hlfs(t, store, "init", "x"), 2, `unexpected argument "x"`)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wantError(t, hlfs(t, file, "init"), 1, "not a directory")
}

// The first create makes the store.
func TestCreateMakesTheStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fresh")
	mustHLFS(t, dir, "create", "v", "--size", "1M")
	mustHLFS(t, dir, "info", "v")
}
