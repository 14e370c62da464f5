package snapshot

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hlfs/hlfs/segment"
	"github.com/stretchr/testify/require"
)

// at is a fixed creation time, sec seconds after a base, in UTC with no
// monotonic reading: what DecodeOp and DecodeTree return.
func at(sec int64) time.Time { return time.Unix(1_700_000_000+sec, 123).UTC() }

// setupPos is where setup operation i of a table case is logged.
func setupPos(i int) segment.Pos { return segment.Pos{Seq: 1, Off: int64(64 * (i + 1))} }

// opPos is where the operation under test is logged.
var opPos = segment.Pos{Seq: 9, Off: 4096}

func create(id, parent ID, name string) Op {
	return Op{Kind: Create, ID: id, Parent: parent, Name: name, Created: at(int64(id))}
}
func del(id ID) Op      { return Op{Kind: Delete, ID: id} }
func rollback(id ID) Op { return Op{Kind: Rollback, ID: id} }

// build applies ops to a New tree at setupPos.
func build(t testing.TB, ops ...Op) *Tree {
	t.Helper()
	tr := New()
	for i, op := range ops {
		require.NoError(t, tr.Apply(op, setupPos(i)), "setup op %d %+v", i, op)
	}
	return tr
}

// shape describes the nodes as "id:name^parent" in creation order.
func shape(tr *Tree) string {
	var parts []string
	for _, n := range tr.Nodes() {
		parts = append(parts, fmt.Sprintf("%d:%s^%d", n.ID, n.Name, n.Parent))
	}
	return strings.Join(parts, " ")
}

// sampleOps build a tree with a rollback branch, a deleted middle node and
// the head on a node with a child:
//
//	s1 ─┬─ s3          (s2, between s1 and s3, deleted)
//	    └─ s4 ── s5    head s4 after a rollback
func sampleOps() []Op {
	return []Op{
		create(1, 0, "s1"),
		create(2, 1, "s2"),
		create(3, 2, "s3"),
		rollback(1),
		create(4, 1, "s4"),
		create(5, 4, "s5"),
		del(2),
		rollback(4),
	}
}

// sampleTree is sampleOps applied, with generations 3 and 1 for s1 and s5.
func sampleTree(t testing.TB) *Tree {
	t.Helper()
	tr := build(t, sampleOps()...)
	require.NoError(t, tr.SetGen(1, 3))
	require.NoError(t, tr.SetGen(5, 1))
	return tr
}

func TestSampleTree(t *testing.T) {
	tr := sampleTree(t)
	require.Equal(t, "1:s1^0 3:s3^1 4:s4^1 5:s5^4", shape(tr))
	require.Equal(t, ID(4), tr.Head())
	require.Equal(t, ID(6), tr.Next())
	require.Equal(t, setupPos(7), tr.LastRollback())
	require.NoError(t, tr.Check())
}

func TestApply(t *testing.T) {
	long := strings.Repeat("x", 128)
	cases := []struct {
		name    string
		setup   []Op
		op      Op
		wantErr error
		// On success:
		head     ID
		next     ID
		rollback segment.Pos
		shape    string
	}{
		// Create.
		{name: "create first", op: create(1, 0, "s1"), head: 1, next: 2, shape: "1:s1^0"},
		{name: "create child of head", setup: []Op{create(1, 0, "s1")}, op: create(2, 1, "s2"),
			head: 2, next: 3, shape: "1:s1^0 2:s2^1"},
		{name: "create skips ids", setup: []Op{create(1, 0, "s1")}, op: create(7, 1, "s7"),
			head: 7, next: 8, shape: "1:s1^0 7:s7^1"},
		{name: "create under a non-head parent", setup: []Op{create(1, 0, "s1"), create(2, 1, "s2")}, op: create(3, 1, "s3"),
			head: 3, next: 4, shape: "1:s1^0 2:s2^1 3:s3^1"},
		{name: "create a second root", setup: []Op{create(1, 0, "s1")}, op: create(2, 0, "s2"),
			head: 2, next: 3, shape: "1:s1^0 2:s2^0"},
		{name: "create with a 128-character name", op: create(1, 0, long), head: 1, next: 2, shape: "1:" + long + "^0"},
		{name: "create reuses a deleted name", setup: []Op{create(1, 0, "s1"), del(1)}, op: create(2, 0, "s1"),
			head: 2, next: 3, shape: "2:s1^0"},
		{name: "create keeps the last rollback", setup: []Op{create(1, 0, "s1"), rollback(1)}, op: create(2, 1, "s2"),
			head: 2, next: 3, rollback: setupPos(1), shape: "1:s1^0 2:s2^1"},
		{name: "create id 0", op: create(0, 0, "s0"), wantErr: ErrConflict},
		{name: "create id of the last", setup: []Op{create(1, 0, "s1"), create(2, 1, "s2")}, op: create(2, 1, "s3"), wantErr: ErrConflict},
		{name: "create id below the last", setup: []Op{create(1, 0, "s1"), create(5, 1, "s5")}, op: create(3, 1, "s3"), wantErr: ErrConflict},
		{name: "create id of a deleted snapshot", setup: []Op{create(1, 0, "s1"), create(2, 1, "s2"), del(2)}, op: create(2, 1, "s3"), wantErr: ErrConflict},
		{name: "create taken name", setup: []Op{create(1, 0, "s1")}, op: create(2, 1, "s1"), wantErr: ErrExists},
		{name: "create unknown parent", setup: []Op{create(1, 0, "s1")}, op: create(2, 5, "s2"), wantErr: ErrConflict},
		{name: "create under a deleted parent", setup: []Op{create(1, 0, "s1"), create(2, 1, "s2"), del(1)}, op: create(3, 1, "s3"), wantErr: ErrConflict},
		{name: "create empty name", op: create(1, 0, ""), wantErr: ErrConflict},
		{name: "create name starting with a dot", op: create(1, 0, ".s"), wantErr: ErrConflict},
		{name: "create name with a space", op: create(1, 0, "a b"), wantErr: ErrConflict},
		{name: "create name with an at sign", op: create(1, 0, "vm@s"), wantErr: ErrConflict},
		{name: "create 129-character name", op: create(1, 0, long+"x"), wantErr: ErrConflict},

		// Delete.
		{name: "delete unknown", setup: []Op{create(1, 0, "s1")}, op: del(2), wantErr: ErrNotFound},
		{name: "delete id 0", setup: []Op{create(1, 0, "s1")}, op: del(0), wantErr: ErrNotFound},
		{name: "delete twice", setup: []Op{create(1, 0, "s1"), create(2, 1, "s2"), del(1)}, op: del(1), wantErr: ErrNotFound},
		{name: "delete the only snapshot", setup: []Op{create(1, 0, "s1")}, op: del(1), head: 0, next: 2, shape: ""},
		{name: "delete the head leaf", setup: []Op{create(1, 0, "s1"), create(2, 1, "s2"), create(3, 2, "s3")}, op: del(3),
			head: 2, next: 4, shape: "1:s1^0 2:s2^1"},
		{name: "delete a middle node", setup: []Op{create(1, 0, "s1"), create(2, 1, "s2"), create(3, 2, "s3")}, op: del(2),
			head: 3, next: 4, shape: "1:s1^0 3:s3^1"},
		{name: "delete a root", setup: []Op{create(1, 0, "s1"), create(2, 1, "s2"), create(3, 2, "s3")}, op: del(1),
			head: 3, next: 4, shape: "2:s2^0 3:s3^2"},
		{name: "delete a node with two children", setup: []Op{create(1, 0, "s1"), create(2, 1, "s2"), create(3, 2, "s3"), rollback(2), create(4, 2, "s4")},
			op: del(2), head: 4, next: 5, rollback: setupPos(3), shape: "1:s1^0 3:s3^1 4:s4^1"},
		{name: "delete the head with children", setup: []Op{create(1, 0, "s1"), create(2, 1, "s2"), create(3, 2, "s3"), rollback(2)},
			op: del(2), head: 1, next: 4, rollback: setupPos(3), shape: "1:s1^0 3:s3^1"},
		{name: "delete the root head", setup: []Op{create(1, 0, "s1"), create(2, 1, "s2"), rollback(1)},
			op: del(1), head: 0, next: 3, rollback: setupPos(2), shape: "2:s2^0"},
		{name: "delete a leaf off the head's line", setup: []Op{create(1, 0, "s1"), create(2, 1, "s2"), rollback(1)},
			op: del(2), head: 1, next: 3, rollback: setupPos(2), shape: "1:s1^0"},

		// Rollback.
		{name: "rollback unknown", setup: []Op{create(1, 0, "s1")}, op: rollback(2), wantErr: ErrNotFound},
		{name: "rollback id 0", setup: []Op{create(1, 0, "s1")}, op: rollback(0), wantErr: ErrNotFound},
		{name: "rollback to a deleted snapshot", setup: []Op{create(1, 0, "s1"), create(2, 1, "s2"), del(1)}, op: rollback(1), wantErr: ErrNotFound},
		{name: "rollback on an empty tree", op: rollback(1), wantErr: ErrNotFound},
		{name: "rollback to an ancestor", setup: []Op{create(1, 0, "s1"), create(2, 1, "s2")}, op: rollback(1),
			head: 1, next: 3, rollback: opPos, shape: "1:s1^0 2:s2^1"},
		{name: "rollback to the head", setup: []Op{create(1, 0, "s1")}, op: rollback(1),
			head: 1, next: 2, rollback: opPos, shape: "1:s1^0"},
		{name: "rollback across branches", setup: []Op{create(1, 0, "s1"), create(2, 1, "s2"), rollback(1), create(3, 1, "s3")}, op: rollback(2),
			head: 2, next: 4, rollback: opPos, shape: "1:s1^0 2:s2^1 3:s3^1"},

		// Unknown kinds.
		{name: "kind 0", setup: []Op{create(1, 0, "s1")}, op: Op{Kind: 0, ID: 1}, wantErr: ErrConflict},
		{name: "kind 4", setup: []Op{create(1, 0, "s1")}, op: Op{Kind: 4, ID: 1}, wantErr: ErrConflict},
		{name: "kind 255 shaped as a create", op: Op{Kind: 255, ID: 1, Name: "s1"}, wantErr: ErrConflict},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := build(t, tc.setup...)
			before := tr.Encode()
			verr := tr.Validate(tc.op)
			require.Equal(t, before, tr.Encode(), "Validate changed the tree")
			err := tr.Apply(tc.op, opPos)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.ErrorIs(t, verr, tc.wantErr, "Validate disagrees with Apply")
				require.Equal(t, before, tr.Encode(), "a refused op changed the tree")
				require.NoError(t, tr.Check())
				return
			}
			require.NoError(t, err)
			require.NoError(t, verr, "Validate refuses what Apply accepts")
			require.NoError(t, tr.Check())
			require.Equal(t, tc.shape, shape(tr))
			require.Equal(t, tc.head, tr.Head(), "head")
			require.Equal(t, tc.next, tr.Next(), "next")
			require.Equal(t, tc.rollback, tr.LastRollback(), "last rollback")
			require.Equal(t, len(tr.Nodes()), tr.Len())
			if tc.op.Kind == Create {
				n, ok := tr.ByID(tc.op.ID)
				require.True(t, ok)
				require.Equal(t, Node{ID: tc.op.ID, Parent: tc.op.Parent, Name: tc.op.Name, Created: tc.op.Created, Pos: opPos}, n)
				byName, ok := tr.ByName(tc.op.Name)
				require.True(t, ok)
				require.Equal(t, n, byName)
			}
			if tc.op.Kind == Delete {
				_, ok := tr.ByID(tc.op.ID)
				require.False(t, ok, "deleted snapshot still found")
			}
		})
	}
}

// TestApplyZeroTree: the zero Tree (next 0) refuses id 0 and accepts id 1.
func TestApplyZeroTree(t *testing.T) {
	var tr Tree
	require.NoError(t, tr.Check())
	require.Equal(t, ID(0), tr.Next())
	require.ErrorIs(t, tr.Apply(create(0, 0, "s0"), opPos), ErrConflict)
	require.ErrorIs(t, tr.Apply(del(1), opPos), ErrNotFound)
	require.NoError(t, tr.Apply(create(1, 0, "s1"), opPos))
	require.Equal(t, ID(2), tr.Next())
	require.Equal(t, ID(1), tr.Head())
	require.NoError(t, tr.Check())
}

// TestApplyCreateMaxID: an accepted create leaves a tree that passes Check.
// Create with the largest id is accepted and sets next to id+1, which wraps
// to 0: Check then fails (id not below next) and any later create id
// passes the id test. See the report of the snapshot tests.
func TestApplyCreateMaxID(t *testing.T) {
	tr := New()
	if err := tr.Apply(create(math.MaxUint32, 0, "s"), opPos); err == nil {
		require.NoError(t, tr.Check())
		require.ErrorIs(t, tr.Apply(create(1, 0, "t"), opPos), ErrConflict)
	} else {
		require.ErrorIs(t, err, ErrConflict)
	}
}

func TestSetGen(t *testing.T) {
	tr := build(t, create(1, 0, "s1"), create(2, 1, "s2"))
	require.Equal(t, map[ObjectID]bool{{1, 0}: true, {2, 0}: true}, tr.Objects())
	require.NoError(t, tr.SetGen(1, 3))
	require.NoError(t, tr.SetGen(1, 3), "the same generation again")
	before := tr.Encode()
	require.ErrorIs(t, tr.SetGen(1, 2), ErrConflict)
	require.ErrorIs(t, tr.SetGen(1, 0), ErrConflict)
	require.ErrorIs(t, tr.SetGen(3, 1), ErrNotFound)
	require.ErrorIs(t, tr.SetGen(0, 1), ErrNotFound)
	require.Equal(t, before, tr.Encode(), "a refused SetGen changed the tree")
	require.NoError(t, tr.SetGen(1, 4))
	require.NoError(t, tr.SetGen(2, math.MaxUint32))
	n, _ := tr.ByID(1)
	require.Equal(t, Gen(4), n.Gen)
	require.Equal(t, map[ObjectID]bool{{1, 4}: true, {2, math.MaxUint32}: true}, tr.Objects())
	require.NoError(t, tr.Apply(del(2), opPos))
	require.ErrorIs(t, tr.SetGen(2, math.MaxUint32), ErrNotFound)
	require.Equal(t, map[ObjectID]bool{{1, 4}: true}, tr.Objects())
	require.Empty(t, New().Objects())
}

func TestCloneAndNodesAreCopies(t *testing.T) {
	tr := sampleTree(t)
	want := tr.Encode()
	c := tr.Clone()
	require.Equal(t, want, c.Encode())
	require.NoError(t, c.Apply(create(6, 4, "s6"), opPos))
	require.NoError(t, c.Apply(del(1), opPos))
	require.NoError(t, c.SetGen(3, 9))
	nodes := tr.Nodes()
	nodes[0].Name, nodes[0].Gen = "changed", 77
	require.Equal(t, want, tr.Encode(), "changing a clone or Nodes() changed the tree")
}

func TestLookups(t *testing.T) {
	tr := sampleTree(t)
	n, ok := tr.ByName("s5")
	require.True(t, ok)
	require.Equal(t, Node{ID: 5, Parent: 4, Name: "s5", Created: at(5), Pos: setupPos(5), Gen: 1}, n)
	got, ok := tr.ByID(5)
	require.True(t, ok)
	require.Equal(t, n, got)
	for _, name := range []string{"s2", "", "S5", "s"} {
		_, ok := tr.ByName(name)
		require.False(t, ok, name)
	}
	for _, id := range []ID{0, 2, 6, math.MaxUint32} {
		_, ok := tr.ByID(id)
		require.False(t, ok, id)
	}
	require.Equal(t, 4, tr.Len())
}

// TestCheck: Check names each broken invariant, and DecodeTree refuses a
// table that encodes a broken tree even with a valid checksum.
func TestCheck(t *testing.T) {
	node := func(id, parent ID, name string) Node { return Node{ID: id, Parent: parent, Name: name, Created: at(0)} }
	cases := []struct {
		name string
		tree *Tree
		want string // "" passes; else in the error
	}{
		{"new", New(), ""},
		{"zero", &Tree{}, ""},
		{"zero with a head", &Tree{head: 1}, "head 1 is not a snapshot"},
		{"valid", &Tree{next: 9, head: 8, nodes: []Node{node(1, 0, "a"), node(3, 1, "b"), node(8, 1, "c")}}, ""},
		{"id 0", &Tree{next: 2, nodes: []Node{node(0, 0, "a")}}, "ids must increase"},
		{"ids decrease", &Tree{next: 3, nodes: []Node{node(2, 0, "a"), node(1, 0, "b")}}, "ids must increase"},
		{"duplicate id", &Tree{next: 3, nodes: []Node{node(1, 0, "a"), node(1, 0, "b")}}, "ids must increase"},
		{"id equal to next", &Tree{next: 2, nodes: []Node{node(1, 0, "a"), node(2, 0, "b")}}, "not below next id 2"},
		{"id above next", &Tree{next: 2, nodes: []Node{node(5, 0, "a")}}, "not below next id 2"},
		{"a node in the zero tree", &Tree{nodes: []Node{node(1, 0, "a")}}, "not below next id 0"},
		{"empty name", &Tree{next: 2, nodes: []Node{node(1, 0, "")}}, "invalid name"},
		{"name with a slash", &Tree{next: 2, nodes: []Node{node(1, 0, "a/b")}}, "invalid name"},
		{"129-character name", &Tree{next: 2, nodes: []Node{node(1, 0, strings.Repeat("n", 129))}}, "invalid name"},
		{"duplicate name", &Tree{next: 3, nodes: []Node{node(1, 0, "a"), node(2, 1, "a")}}, `two snapshots are named "a"`},
		{"own parent", &Tree{next: 2, nodes: []Node{node(1, 1, "a")}}, "not an older snapshot"},
		{"newer parent", &Tree{next: 3, nodes: []Node{node(1, 2, "a"), node(2, 0, "b")}}, "not an older snapshot"},
		{"missing parent", &Tree{next: 4, nodes: []Node{node(1, 0, "a"), node(3, 2, "b")}}, "not an older snapshot"},
		{"head missing", &Tree{next: 3, head: 2, nodes: []Node{node(1, 0, "a")}}, "head 2 is not a snapshot"},
		{"head at next", &Tree{next: 2, head: 2, nodes: []Node{node(1, 0, "a")}}, "head 2 is not a snapshot"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.tree.Check()
			for _, ver := range []uint16{1, 2} {
				enc := tc.tree.Encode()
				if ver == 1 {
					enc = encodeTreeV1(tc.tree)
				}
				_, derr := DecodeTree(enc, ver)
				if tc.want == "" {
					require.NoError(t, derr, "version %d", ver)
				} else {
					require.ErrorIs(t, derr, ErrCorrupt, "version %d", ver)
					require.ErrorContains(t, derr, tc.want, "version %d", ver)
				}
			}
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrBroken)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
