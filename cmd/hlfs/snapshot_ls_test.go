package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestSnapshotLs(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	if out := mustHLFS(t, store, "snapshot", "ls", "vm1"); out != "NAME  CREATED  PARENT  EXCLUSIVE  CLONES\n" {
		t.Errorf("no snapshots: %q", out)
	}
	if out := mustHLFS(t, store, "snapshot", "ls", "vm1", "--json"); out != "[]\n" {
		t.Errorf("no snapshots, --json: %q", out)
	}
	if out := mustHLFS(t, store, "snapshot", "ls", "vm1", "--tree"); out != "vm1\n└── * (live volume)\n" {
		t.Errorf("no snapshots, --tree: %q", out)
	}

	writeVolume(t, dir, "vm1", 0, fill("a", 8192))
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	writeVolume(t, dir, "vm1", 0, fill("b", 4096)) // s1 keeps 4 KiB only it holds
	mustHLFS(t, store, "snapshot", "create", "vm1@s2")
	mustHLFS(t, store, "clone", "vm1@s2", "c1")

	out := mustHLFS(t, store, "snapshot", "ls", "vm1")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("snapshot ls:\n%s", out)
	}
	for i, want := range [][]string{
		{"NAME", "CREATED", "PARENT", "EXCLUSIVE", "CLONES"},
		{"s1 ", " - ", "4 KiB"},
		{"s2 ", " s1 ", " c1"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}

	var snaps []snapshotJSON
	if err := json.Unmarshal([]byte(mustHLFS(t, store, "snapshot", "ls", "--json", "vm1")), &snaps); err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 2 || snaps[0].Name != "s1" || snaps[0].Parent != "" || snaps[0].ExclusiveBytes != 4096 ||
		snaps[0].Clones == nil || len(snaps[0].Clones) != 0 || snaps[0].Head || snaps[0].Created.IsZero() ||
		snaps[1].Name != "s2" || snaps[1].Parent != "s1" || strings.Join(snaps[1].Clones, ",") != "c1" || !snaps[1].Head ||
		snaps[1].Created.Before(snaps[0].Created) {
		t.Errorf("snapshot ls --json: %+v", snaps)
	}
	// The JSON keeps empty lists as [], not null.
	if out := mustHLFS(t, store, "snapshot", "ls", "--json", "vm1"); !strings.Contains(out, `"clones": []`) {
		t.Errorf("--json:\n%s", out)
	}

	wantError(t, hlfs(t, store, "snapshot", "ls", "nope"), 1, `no volume "nope"`)
	wantError(t, hlfs(t, store, "snapshot", "ls"), 2, "missing VOLUME")
	wantError(t, hlfs(t, store, "snapshot", "ls", "vm1", "--tree", "--json"), 2, "--tree and --json do not go together")
}

// The tree shows the branches rollbacks leave, and where the live volume is.
func TestSnapshotLsTree(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	writeVolume(t, dir, "vm1", 0, fill("a", 4096))
	mustHLFS(t, store, "snapshot", "create", "vm1@base")
	writeVolume(t, dir, "vm1", 0, fill("b", 4096))
	mustHLFS(t, store, "snapshot", "create", "vm1@b1")
	mustHLFS(t, store, "snapshot", "create", "vm1@b2")
	mustHLFS(t, store, "snapshot", "rollback", "vm1@base")
	writeVolume(t, dir, "vm1", 0, fill("c", 4096))
	mustHLFS(t, store, "snapshot", "create", "vm1@c1")
	mustHLFS(t, store, "clone", "vm1@c1", "other")
	writeVolume(t, dir, "vm1", 0, fill("d", 4096))

	out := mustHLFS(t, store, "snapshot", "ls", "vm1", "--tree")
	// Keep the drawing, names and clones, not the times and sizes.
	details := regexp.MustCompile(`  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  [0-9.]+ [KMGTPE]?i?B`)
	shape := strings.Split(strings.TrimSuffix(details.ReplaceAllString(out, ""), "\n"), "\n")
	want := []string{
		"vm1",
		"└── base",
		"    ├── b1",
		"    │   └── b2",
		"    └── c1  clones: other",
		"        └── * (live volume)",
	}
	if strings.Join(shape, "\n") != strings.Join(want, "\n") {
		t.Errorf("tree:\n%s\nwant the shape:\n%s", out, strings.Join(want, "\n"))
	}

	// After a rollback to a snapshot with children, the live volume is its
	// last child.
	mustHLFS(t, store, "snapshot", "rollback", "vm1@b1")
	out = mustHLFS(t, store, "snapshot", "ls", "vm1", "--tree")
	if !strings.Contains(out, "├── b1  ") || !strings.Contains(out, "│   ├── b2  ") || !strings.Contains(out, "│   └── * (live volume)\n") {
		t.Errorf("tree after rolling back to b1:\n%s", out)
	}
}

// A served volume's snapshots can be listed.
func TestSnapshotLsWhileServed(t *testing.T) {
	store, _ := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	startServe(t, store, "vm1", "--listen", "127.0.0.1:0", "--admin-socket", "none", "vm1")
	if out := mustHLFS(t, store, "snapshot", "ls", "vm1", "--tree"); !strings.Contains(out, "└── s1  ") ||
		!strings.Contains(out, "    └── * (live volume)") {
		t.Errorf("tree while served:\n%s", out)
	}
}
