package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestClone(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "2M", "--block-size", "8K")
	writeVolume(t, dir, "vm1", 0, fill("src", 16384))
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	writeVolume(t, dir, "vm1", 0, fill("later", 8192))

	if out := mustHLFS(t, store, "clone", "vm1@s1", "c1"); out != "created c1 from vm1@s1\n" {
		t.Errorf("stdout %q", out)
	}
	got := readVolume(t, dir, "c1")
	if len(got) != 2<<20 || !bytes.Equal(got[:16384], fill("src", 16384)) || !isZero(got[16384:]) {
		t.Error("the clone does not read as the snapshot")
	}
	// The clone is writable, and its writes stay its own.
	writeVolume(t, dir, "c1", 8192, fill("mine", 8192))
	if got := readVolume(t, dir, "c1"); !bytes.Equal(got[8192:16384], fill("mine", 8192)) {
		t.Error("the clone lost its write")
	}
	if got := readVolume(t, dir, "vm1"); !bytes.Equal(got[8192:16384], fill("src", 16384)[8192:]) {
		t.Error("a write to the clone changed its source")
	}

	// info and ls show the relation both ways.
	if out := mustHLFS(t, store, "info", "c1"); !strings.Contains(out, "clone of:     vm1@s1\n") || !strings.Contains(out, "block size:   8 KiB\n") {
		t.Errorf("info c1:\n%s", out)
	}
	if out := mustHLFS(t, store, "info", "vm1"); !strings.Contains(out, "clones:       c1\n") || strings.Contains(out, "clone of:") {
		t.Errorf("info vm1:\n%s", out)
	}
	var v volumeJSON
	if err := json.Unmarshal([]byte(mustHLFS(t, store, "info", "--json", "c1")), &v); err != nil || v.Source != "vm1@s1" || v.Clones != nil {
		t.Errorf("info --json c1: %+v, %v", v, err)
	}
	var vols []volumeJSON
	if err := json.Unmarshal([]byte(mustHLFS(t, store, "ls", "--json")), &vols); err != nil || len(vols) != 2 ||
		vols[0].Name != "c1" || vols[0].Source != "vm1@s1" || strings.Join(vols[1].Clones, ",") != "c1" {
		t.Errorf("ls --json: %+v, %v", vols, err)
	}
	lines := strings.Split(mustHLFS(t, store, "ls"), "\n")
	if !strings.Contains(lines[0], "SOURCE") || !strings.Contains(lines[0], "CLONES") ||
		!strings.Contains(lines[1], " vm1@s1 ") || !strings.Contains(lines[2], " c1 ") {
		t.Errorf("ls:\n%s", strings.Join(lines, "\n"))
	}
	mustHLFS(t, store, "fsck", "c1")
}

// A clone of a clone reads through both.
func TestCloneOfClone(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	writeVolume(t, dir, "vm1", 0, fill("a", 4096))
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	mustHLFS(t, store, "clone", "vm1@s1", "c1")
	writeVolume(t, dir, "c1", 4096, fill("b", 4096))
	mustHLFS(t, store, "snapshot", "create", "c1@s1")
	mustHLFS(t, store, "clone", "c1@s1", "c2")
	want := append(fill("a", 4096), fill("b", 4096)...)
	if got := readVolume(t, dir, "c2"); !bytes.Equal(got[:8192], want) {
		t.Error("the clone of a clone does not read through both")
	}
	if out := mustHLFS(t, store, "info", "c2"); !strings.Contains(out, "clone of:     c1@s1\n") {
		t.Errorf("info c2:\n%s", out)
	}
}

func TestCloneErrors(t *testing.T) {
	store, _ := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	mustHLFS(t, store, "create", "taken", "--size", "1M")
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	wantError(t, hlfs(t, store, "clone", "vm1@s1", "taken"), 1, `volume "taken" already exists`)
	wantError(t, hlfs(t, store, "clone", "vm1@nope", "c1"), 1, `no snapshot "nope" of volume vm1`)
	wantError(t, hlfs(t, store, "clone", "nope@s1", "c1"), 1, `no volume "nope"`)
	wantError(t, hlfs(t, store, "clone", "vm1@s1", "bad/name"), 1, "invalid volume name")
	wantError(t, hlfs(t, store, "clone", "vm1@s1", "c1@s"), 1, "c1@s is a snapshot, not a volume")
	wantError(t, hlfs(t, store, "clone", "vm1@s1"), 2, "missing NEWVOLUME")
	wantError(t, hlfs(t, store, "clone"), 2, "missing VOLUME@SNAPSHOT and NEWVOLUME")
	r := hlfs(t, store, "ls")
	if strings.Contains(r.stdout, "c1") {
		t.Errorf("a failed clone left a volume:\n%s", r.stdout)
	}
}

// The source may be served meanwhile.
func TestCloneWhileServed(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	writeVolume(t, dir, "vm1", 0, fill("a", 4096))
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	startServe(t, store, "vm1", "--listen", "127.0.0.1:0", "--admin-socket", "none", "vm1")
	mustHLFS(t, store, "clone", "vm1@s1", "c1")
	if got := readVolume(t, dir, "c1"); !bytes.Equal(got[:4096], fill("a", 4096)) {
		t.Error("the clone does not read as the snapshot")
	}
}
