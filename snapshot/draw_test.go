package snapshot

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/*.golden")

// drawItems is what a caller draws for tr: each snapshot under its parent,
// labelled with its id and generation.
func drawItems(tr *Tree) []DrawItem {
	names := map[ID]string{}
	for _, n := range tr.Nodes() {
		names[n.ID] = n.Name
	}
	var items []DrawItem
	for _, n := range tr.Nodes() {
		items = append(items, DrawItem{Name: n.Name, Parent: names[n.Parent], Label: fmt.Sprintf("id %d gen %d", n.ID, n.Gen),
			Head: tr.Head() == n.ID})
	}
	return items
}

// TestDrawGolden draws the sample tree (a rollback branch, a deleted
// middle node, the head with a child) and the trees that follow from it,
// against testdata/draw.golden.
func TestDrawGolden(t *testing.T) {
	tr := sampleTree(t)
	var b strings.Builder
	step := func(what string, op *Op) {
		t.Helper()
		if op != nil {
			require.NoError(t, tr.Apply(*op, opPos))
			require.NoError(t, tr.Check())
		}
		fmt.Fprintf(&b, "# %s\n", what)
		Draw(&b, "vm1", drawItems(tr))
		b.WriteString("\n")
	}
	step("the sample: s2 deleted, rolled back to s4 whose child is s5", nil)
	step("rolled back to s1, which has children", &Op{Kind: Rollback, ID: 1})
	step("a snapshot of the live volume after that rollback", &Op{Kind: Create, ID: 6, Parent: 1, Name: "s6", Created: at(6)})
	step("the head s6 deleted: the head moves to s1", &Op{Kind: Delete, ID: 6})
	step("the root s1 deleted: no head, the live volume hangs from the volume", &Op{Kind: Delete, ID: 1})
	step("rolled back to a leaf", &Op{Kind: Rollback, ID: 5})
	for _, id := range []ID{3, 4, 5} {
		require.NoError(t, tr.Apply(Op{Kind: Delete, ID: id}, opPos))
	}
	step("every snapshot deleted", nil)

	path := filepath.Join("testdata", "draw.golden")
	if *updateGolden {
		require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run with -update-golden")
	require.Equal(t, string(want), b.String())
}

func TestDraw(t *testing.T) {
	for _, tc := range []struct {
		name  string
		items []DrawItem
		want  string
	}{
		{"no snapshots", nil, `
vm1
└── * (live volume)
`},
		{"no head", []DrawItem{{Name: "a"}, {Name: "b", Parent: "a"}}, `
vm1
├── a
│   └── b
└── * (live volume)
`},
		{"head is a leaf", []DrawItem{{Name: "a"}, {Name: "b", Parent: "a", Label: "x", Head: true}}, `
vm1
└── a
    └── b  x
        └── * (live volume)
`},
		{"an unknown parent hangs from the volume", []DrawItem{{Name: "a", Head: true}, {Name: "b", Parent: "gone"}}, `
vm1
├── a
│   └── * (live volume)
└── b
`},
		{"children in the order given", []DrawItem{{Name: "r"}, {Name: "z", Parent: "r"}, {Name: "a", Parent: "r", Head: true}, {Name: "m", Parent: "r"}}, `
vm1
└── r
    ├── z
    ├── a
    │   └── * (live volume)
    └── m
`},
		{"several heads: the live volume under the deepest", []DrawItem{{Name: "b", Parent: "a", Head: true}, {Name: "a", Head: true}, {Name: "c", Parent: "a"}}, `
vm1
└── a
    ├── b
    │   └── * (live volume)
    └── c
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			Draw(&b, "vm1", tc.items)
			require.Equal(t, strings.TrimPrefix(tc.want, "\n"), b.String())
		})
	}
}

// TestDrawCycle: Draw's doc says a cycle (corrupt input) is drawn once.
func TestDrawCycle(t *testing.T) {
	var b strings.Builder
	Draw(&b, "vm1", []DrawItem{{Name: "a", Parent: "b"}, {Name: "b", Parent: "a", Head: true}, {Name: "c", Parent: "c"}})
	for _, name := range []string{"a", "b", "c"} {
		require.Equal(t, 1, strings.Count(b.String(), "── "+name+"\n"), "%s in\n%s", name, b.String())
	}
}
