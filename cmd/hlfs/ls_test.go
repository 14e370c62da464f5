package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hlfs/hlfs/lfs"
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

// A volume with data whose superblock was cut short is listed as damaged,
// with its stored bytes and the way out (issue 10, item 2).
func TestLsShowsTruncatedVolumeAsDamaged(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "good", "--size", "1M")
	mustHLFS(t, store, "create", "c", "--size", "4M")
	writeSome(t, dir, "c")
	if err := os.Truncate(filepath.Join(dir, "c", "super"), 10); err != nil {
		t.Fatal(err)
	}
	r := hlfs(t, store, "ls")
	if r.code != 1 {
		t.Errorf("ls exit %d, want 1", r.code)
	}
	lines := strings.Split(r.stdout, "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[1], "c ") || !strings.Contains(lines[1], "damaged") || !strings.HasPrefix(lines[2], "good ") {
		t.Errorf("ls stdout:\n%s", r.stdout)
	}
	for _, want := range []string{"hlfs: c: damaged: its superblock c/super is 10 bytes", "'hlfs fsck --repair c'", "hlfs: 1 of 2 volumes"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("ls stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	var vols []volumeJSON
	r = hlfs(t, store, "ls", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &vols); err != nil {
		t.Fatal(err)
	}
	if len(vols) != 2 || !strings.Contains(vols[0].Damage, "10 bytes") || vols[0].Segments == 0 || vols[0].BytesStored == 0 || vols[1].Damage != "" {
		t.Errorf("ls --json: %+v", vols)
	}
	// info, create and rm agree: it exists, damaged.
	wantError(t, hlfs(t, store, "info", "c"), 1, "volume c is damaged", "10 bytes", "hlfs fsck c")
	wantError(t, hlfs(t, store, "create", "c", "--size", "1M"), 1, "volume c is damaged")
	if out := mustHLFS(t, store, "rm", "c"); out != "removed c\n" {
		t.Errorf("rm: %q", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "c")); !os.IsNotExist(err) {
		t.Errorf("rm left the damaged volume's folder: %v", err)
	}
	mustHLFS(t, store, "ls")
}

// Entries of the store's root that are not volumes (a README, a filer's
// .snapshot, what an interrupted clone left) are skipped with a warning,
// and ls succeeds (issue 10, item 3).
func TestLsIgnoresStrayEntries(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vol", "--size", "1M")
	for path, content := range map[string]string{
		"README":               "about this store",
		".snapshot/hourly.0/x": "",
		"left/lineage":         "",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, path), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := hlfs(t, store, "ls")
	if r.code != 0 || !strings.Contains(r.stdout, "\nvol ") || strings.Count(r.stdout, "\n") != 2 {
		t.Errorf("ls: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"hlfs: warning: ignoring .snapshot in store " + store + ": not a volume name\n",
		"hlfs: warning: ignoring README in store " + store + ": a file, not a volume\n",
		"hlfs: warning: ignoring left in store " + store + ": holds lineage but no superblock (left by an interrupted create, clone or rm; 'hlfs rm left' removes it)\n",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("ls stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	wantError(t, hlfs(t, store, "create", "left", "--size", "1M"), 1, "holds objects under left/ but no superblock: lineage", "'hlfs rm left'")
	mustHLFS(t, store, "rm", "left")
	mustHLFS(t, store, "create", "left", "--size", "1M")
	wantError(t, hlfs(t, store, "info", "README"), 1, `no volume "README"`)
	wantError(t, hlfs(t, store, "rm", "README"), 1, `no volume "README"`)
}

// On a quiet store, ls from the store index prints exactly what ls --exact
// (every volume read from the store) prints, through creates, imports,
// snapshots, clones, resizes and removals, and the index is no volume.
func TestLsIndexMatchesExact(t *testing.T) {
	store, dir := testStore(t)
	img := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(img, []byte(strings.Repeat("hlfs index ", 200000)), 0o644); err != nil {
		t.Fatal(err)
	}
	mustHLFS(t, store, "create", "base", "--size", "4M", "--compress")
	mustHLFS(t, store, "import", img, "base", "--size", "4M")
	mustHLFS(t, store, "snapshot", "create", "base@s1")
	mustHLFS(t, store, "clone", "base@s1", "kid")
	mustHLFS(t, store, "create", "plain", "--size", "1M")
	mustHLFS(t, store, "resize", "plain", "--size", "2M")
	mustHLFS(t, store, "create", "gone", "--size", "1M")
	mustHLFS(t, store, "rm", "gone")
	if _, err := os.Stat(filepath.Join(dir, ".index")); err != nil {
		t.Fatalf("no store index: %v", err)
	}
	for _, args := range [][]string{{"ls", "--json"}, {"ls"}} {
		r := hlfs(t, store, args...)
		exact := hlfs(t, store, append(args, "--exact")...)
		if r.code != 0 || r.stderr != "" || exact.code != 0 {
			t.Fatalf("%v: exit %d, stderr %q; --exact exit %d", args, r.code, r.stderr, exact.code)
		}
		if r.stdout != exact.stdout {
			t.Errorf("%v differs from --exact:\n%s\n--exact:\n%s", args, r.stdout, exact.stdout)
		}
	}
	var vols []volumeJSON
	if err := json.Unmarshal([]byte(mustHLFS(t, store, "ls", "--json")), &vols); err != nil {
		t.Fatal(err)
	}
	if len(vols) != 3 || vols[0].Name != "base" || len(vols[0].Clones) != 1 || vols[0].Segments == 0 ||
		vols[1].Source != "base@s1" || vols[2].Size != 2<<20 {
		t.Errorf("ls --json: %+v", vols)
	}
	sums, err := lfs.ListIndexed(dirStore(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sums {
		if !s.Indexed {
			t.Errorf("%s was read from the store, not from the index", s.Name)
		}
	}
}
