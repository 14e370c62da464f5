package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLsEmpty(t *testing.T) {
	store, _ := testStore(t)
	if out := mustHLFS(t, store, "ls"); out != "NAME  SIZE  STORED  SEGMENTS  SOURCE  CLONES  SERVED BY\n" {
		t.Errorf("ls of an empty store: %q", out)
	}
	if out := mustHLFS(t, store, "ls", "--json"); out != "[]\n" {
		t.Errorf("ls --json of an empty store: %q", out)
	}
}

func TestLs(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "beta", "--size", "2G")
	mustHLFS(t, store, "create", "alpha", "--size", "512M", "--compress")
	// Things in the store that are not volumes are not listed.
	if err := os.MkdirAll(filepath.Join(dir, "junk"), 0o755); err != nil {
		t.Fatal(err)
	}

	out := mustHLFS(t, store, "ls")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("ls:\n%s", out)
	}
	for i, want := range [][]string{{"NAME", "SIZE"}, {"alpha", "512 MiB", "-"}, {"beta", "2 GiB", "-"}} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}

	var vols []volumeJSON
	if err := json.Unmarshal([]byte(mustHLFS(t, store, "ls", "--json")), &vols); err != nil {
		t.Fatal(err)
	}
	if len(vols) != 2 || vols[0].Name != "alpha" || vols[1].Name != "beta" ||
		vols[0].Size != 512<<20 || !vols[0].Compress || vols[1].Size != 2<<30 || vols[1].BlockSize != 4096 ||
		vols[0].Owner != nil || vols[0].Created.IsZero() {
		t.Errorf("ls --json: %+v", vols)
	}
}

// A damaged superblock still lists: ls shows every volume, names the damaged
// object on stderr and exits 1.
func TestLsDamagedVolume(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "good", "--size", "1M")
	mustHLFS(t, store, "create", "bad", "--size", "1M")
	super := filepath.Join(dir, "bad", "super")
	b, err := os.ReadFile(super)
	if err != nil {
		t.Fatal(err)
	}
	b[20] ^= 0xff
	if err := os.WriteFile(super, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r := hlfs(t, store, "ls")
	if r.code != 1 || !strings.Contains(r.stderr, "bad/super") || !strings.Contains(r.stdout, "good") || !strings.Contains(r.stdout, "bad") {
		t.Errorf("ls with a damaged volume: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	wantError(t, hlfs(t, store, "info", "bad"), 1, "bad/super", "corrupt")
	mustHLFS(t, store, "info", "good")
}
