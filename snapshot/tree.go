package snapshot

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/hlfs/hlfs/segment"
)

// ID identifies a snapshot within its volume. IDs are given out in
// increasing order from 1 and never reused; 0 means "none" (the parent of a
// root, the head of a volume without snapshots).
type ID uint32

// maxID is never given out: the next ID after it would wrap to 0.
const maxID = ID(math.MaxUint32)

// Gen is the generation of a snapshot's map object: the cleaner rewrites a
// snapshot's map as a new generation when it moves the data the map names.
type Gen uint32

// Node is one snapshot.
type Node struct {
	ID      ID
	Parent  ID // 0 at a root
	Name    string
	Created time.Time
	// Pos is where the snapshot's create record starts in the log.
	Pos segment.Pos
	// Gen is the generation of the newest map object written for it (the
	// one a checkpoint of this tree names); 0 also before the first.
	Gen Gen
}

// Tree is the snapshot tree of a volume. A volume's tree starts as New
// (next ID 1); the zero Tree is empty with next ID 0, which is what the
// empty table of a snapshot map object encodes.
//
// Invariant (Check): IDs are non-zero, unique, increasing in creation order
// and below Next; every parent is 0 or a node with a smaller ID (so the
// tree is acyclic and every chain of parents ends at exactly one root);
// names are valid and unique; the head is 0 or a node.
type Tree struct {
	next  ID // the next ID to give out
	head  ID
	nodes []Node // in creation order
	// rollback is where the last rollback's record starts (zero: none);
	// the space books need it.
	rollback segment.Pos
}

// New returns an empty tree: no snapshots, next ID 1.
func New() *Tree { return &Tree{next: 1} }

// Next is the ID the next created snapshot gets.
func (t *Tree) Next() ID { return t.next }

// Head is the snapshot the live volume descends from; 0: none.
func (t *Tree) Head() ID { return t.head }

// LastRollback is where the last rollback's record starts; zero: none.
func (t *Tree) LastRollback() segment.Pos { return t.rollback }

// Len is the number of snapshots.
func (t *Tree) Len() int { return len(t.nodes) }

// Nodes returns the snapshots in creation order (a copy).
func (t *Tree) Nodes() []Node { return slices.Clone(t.nodes) }

// ByName returns the snapshot called name.
func (t *Tree) ByName(name string) (Node, bool) {
	for _, n := range t.nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// ByID returns snapshot id.
func (t *Tree) ByID(id ID) (Node, bool) {
	if i := t.index(id); i >= 0 {
		return t.nodes[i], true
	}
	return Node{}, false
}

func (t *Tree) index(id ID) int {
	if id == 0 {
		return -1
	}
	for i, n := range t.nodes {
		if n.ID == id {
			return i
		}
	}
	return -1
}

// Clone returns an independent copy.
func (t *Tree) Clone() *Tree {
	c := *t
	c.nodes = slices.Clone(t.nodes)
	return &c
}

// SetGen records that generation gen of snapshot id's map object was
// written. Generations only go up: a lower one is refused (ErrConflict),
// an unknown id is ErrNotFound.
func (t *Tree) SetGen(id ID, gen Gen) error {
	i := t.index(id)
	if i < 0 {
		return fmt.Errorf("%w: id %d", ErrNotFound, id)
	}
	if gen < t.nodes[i].Gen {
		return fmt.Errorf("%w: generation %d of snapshot %s is older than %d", ErrConflict, gen, t.nodes[i].Name, t.nodes[i].Gen)
	}
	t.nodes[i].Gen = gen
	return nil
}

// Objects returns the map objects the tree names: one generation each.
func (t *Tree) Objects() map[ObjectID]bool {
	out := make(map[ObjectID]bool, len(t.nodes))
	for _, n := range t.nodes {
		out[ObjectID{n.ID, n.Gen}] = true
	}
	return out
}

// Validate tells whether op may be applied: nil, or an error wrapping
// ErrNotFound (delete or rollback of a missing snapshot), ErrExists (a
// create whose name is taken) or ErrConflict (anything else that does not
// fit: an ID already given out, an unknown parent, a bad name, an unknown
// kind). It changes nothing.
func (t *Tree) Validate(op Op) error {
	switch op.Kind {
	case Create:
		if op.ID == 0 || op.ID < t.next {
			return fmt.Errorf("%w: create of %q with id %d, ids up to %d were given out", ErrConflict, op.Name, op.ID, t.next-1)
		}
		if op.ID == maxID {
			return fmt.Errorf("%w: create of %q with id %d: no ids left after it", ErrConflict, op.Name, op.ID)
		}
		if err := ValidateName(op.Name); err != nil {
			return fmt.Errorf("%w: %v", ErrConflict, err)
		}
		if _, taken := t.ByName(op.Name); taken {
			return fmt.Errorf("%w: %s", ErrExists, op.Name)
		}
		if op.Parent != 0 && t.index(op.Parent) < 0 {
			return fmt.Errorf("%w: create of %q names unknown parent %d", ErrConflict, op.Name, op.Parent)
		}
	case Delete, Rollback:
		if t.index(op.ID) < 0 {
			return fmt.Errorf("%w: %s of id %d", ErrNotFound, op.Kind, op.ID)
		}
	default:
		return fmt.Errorf("%w: unknown operation kind %d", ErrConflict, op.Kind)
	}
	return nil
}

// Apply applies op, whose record starts at pos in the log, after checking
// it (Validate; the tree is unchanged on error). Replay and the live path
// both apply snapshot operations only through Apply.
//
//   - Create adds a child of op.Parent named op.Name; it becomes the head
//     and IDs below op.ID+1 are used up.
//   - Delete removes op.ID; its children re-parent to its parent, and so
//     does the head if it was op.ID.
//   - Rollback makes op.ID the head and records pos as the last rollback.
func (t *Tree) Apply(op Op, pos segment.Pos) error {
	if err := t.Validate(op); err != nil {
		return err
	}
	switch op.Kind {
	case Create:
		t.nodes = append(t.nodes, Node{ID: op.ID, Parent: op.Parent, Name: op.Name, Created: op.Created, Pos: pos})
		t.next, t.head = op.ID+1, op.ID
	case Delete:
		i := t.index(op.ID)
		gone := t.nodes[i]
		for k := range t.nodes {
			if t.nodes[k].Parent == op.ID {
				t.nodes[k].Parent = gone.Parent
			}
		}
		if t.head == op.ID {
			t.head = gone.Parent
		}
		t.nodes = slices.Delete(t.nodes, i, i+1)
	case Rollback:
		t.head, t.rollback = op.ID, pos
	}
	return nil
}

// Check verifies the tree's invariants (see Tree); the error wraps
// ErrBroken and names the first broken one.
func (t *Tree) Check() error {
	broken := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBroken, fmt.Sprintf(format, args...))
	}
	names := make(map[string]bool, len(t.nodes))
	var prev ID
	for _, n := range t.nodes {
		switch {
		case n.ID == 0 || n.ID <= prev:
			return broken("snapshot %q has id %d after id %d: ids must increase from 1", n.Name, n.ID, prev)
		case n.ID >= t.next:
			return broken("snapshot %q has id %d, not below next id %d", n.Name, n.ID, t.next)
		case ValidateName(n.Name) != nil:
			return broken("snapshot %d has invalid name %q", n.ID, n.Name)
		case names[n.Name]:
			return broken("two snapshots are named %q", n.Name)
		case n.Parent != 0 && (n.Parent >= n.ID || t.index(n.Parent) < 0):
			return broken("snapshot %q (id %d) has parent %d, which is not an older snapshot", n.Name, n.ID, n.Parent)
		}
		names[n.Name] = true
		prev = n.ID
	}
	if t.head != 0 && t.index(t.head) < 0 {
		return broken("head %d is not a snapshot", t.head)
	}
	return nil
}
