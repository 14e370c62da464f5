package lfs

import (
	"fmt"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
	"github.com/hlfs/hlfs/snapshot"
)

// snapTable is a volume's snapshot tree (snapshot.Tree: its rules and
// codecs) and, beside each snapshot, what only this process knows of it.
// Not safe for concurrent use; the Volume guards it with mu, and replay
// owns its own.
//
// Invariant: run has an entry for exactly the tree's snapshots.
type snapTable struct {
	tree *snapshot.Tree
	run  map[snapshot.ID]*snapRun
}

// snapRun is the runtime state of one snapshot.
type snapRun struct {
	m       *blockmap.Map // its map while in memory; nil once in its map object
	durable bool          // the map object of the node's generation holds m
	nextGen snapshot.Gen  // generation the next map object gets
}

// snapEntry is a snapshot with its runtime state; the run part is shared
// with the table it came from (changes to it are the table's).
type snapEntry struct {
	snapshot.Node
	*snapRun
}

func newSnapTable() *snapTable {
	return &snapTable{tree: snapshot.New(), run: map[snapshot.ID]*snapRun{}}
}

// loadedSnapTable is the table of a tree read from a checkpoint: every map
// is in its map object.
func loadedSnapTable(tree *snapshot.Tree) *snapTable {
	t := &snapTable{tree: tree, run: make(map[snapshot.ID]*snapRun, tree.Len())}
	for _, n := range tree.Nodes() {
		t.run[n.ID] = &snapRun{durable: true, nextGen: n.Gen + 1}
	}
	return t
}

// list returns the snapshots in creation order.
func (t *snapTable) list() []snapEntry {
	nodes := t.tree.Nodes()
	out := make([]snapEntry, len(nodes))
	for i, n := range nodes {
		out[i] = snapEntry{n, t.run[n.ID]}
	}
	return out
}

func (t *snapTable) byName(name string) (snapEntry, bool) {
	n, ok := t.tree.ByName(name)
	return snapEntry{n, t.run[n.ID]}, ok
}

func (t *snapTable) byID(id snapshot.ID) (snapEntry, bool) {
	n, ok := t.tree.ByID(id)
	return snapEntry{n, t.run[n.ID]}, ok
}

// copyWithMaps copies the table; the copies share the (immutable) maps.
func (t *snapTable) copyWithMaps() *snapTable {
	c := &snapTable{tree: t.tree.Clone(), run: make(map[snapshot.ID]*snapRun, len(t.run))}
	for id, r := range t.run {
		cr := *r
		c.run[id] = &cr
	}
	return c
}

// wroteGen records that generation gen of snapshot id's map object holds
// its map: the object is durable and the next one gets gen+1.
func (t *snapTable) wroteGen(id snapshot.ID, gen snapshot.Gen) {
	r := t.run[id]
	if r == nil || t.tree.SetGen(id, gen) != nil {
		return // deleted meanwhile, or a newer generation is recorded
	}
	r.durable, r.nextGen = true, gen+1
}

// mapState is a volume's maps: the live map, the snapshot tree with the
// snapshots' maps, and the space books counted over them. Replay builds
// one; an open Volume keeps one under mu.
type mapState struct {
	m     *blockmap.Map
	snaps *snapTable
	books *books
}

// applySnapshotOp applies a snapshot operation whose record starts at pos,
// the same way at replay and live: the tree's rules (snapshot.Tree.Apply,
// which refuses an operation that does not fit and changes nothing then),
// then the maps and the books. For a rollback, target is the snapshot's
// map (the caller loads it: that may need I/O); the live map becomes a
// copy of it, cut to the volume's size.
func (s *mapState) applySnapshotOp(op snapshot.Op, pos segment.Pos, target *blockmap.Map, size int64) error {
	if op.Kind == snapshot.Rollback && target == nil {
		return fmt.Errorf("lfs: rollback to snapshot %d without its map", op.ID)
	}
	if err := s.snaps.tree.Apply(op, pos); err != nil {
		return err
	}
	switch op.Kind {
	case snapshot.Create:
		s.snaps.run[op.ID] = &snapRun{m: s.m.Clone()}
	case snapshot.Delete:
		delete(s.snaps.run, op.ID)
	case snapshot.Rollback:
		s.m = target.Clone()
		s.m.Punch(size, maxVolumeSize-size)
	}
	s.books.snapshotsChanged(s.snaps.tree, op.Kind)
	return nil
}

// latestSnapObject names the newest generation of snapshot id's map object
// (what a clone starts from: a snapshot with clones is never moved again).
func latestSnapObject(st objstore.Store, vol string, id snapshot.ID) (string, error) {
	names, err := st.List(snapshot.Dir(vol))
	if err != nil {
		return "", err
	}
	best, found := snapshot.Gen(0), false
	for _, n := range names {
		if o, ok := snapshot.ParseObjectName(n); ok && o.ID == id && (!found || o.Gen > best) {
			best, found = o.Gen, true
		}
	}
	if !found {
		return "", fmt.Errorf("%w: %s", objstore.ErrNotExist, snapshot.ObjectName(vol, id, 0))
	}
	return snapshot.ObjectName(vol, id, best), nil
}
