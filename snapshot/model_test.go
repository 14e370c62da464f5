package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hlfs/hlfs/segment"
	"github.com/stretchr/testify/require"
)

// model is the snapshot tree written the plain way, from the rules in
// Tree.Apply's doc, to check Tree against: a list in creation order.
type model struct {
	next, head ID
	nodes      []Node
	rollback   segment.Pos
}

// modelName is the name rule spelled out without a regular expression.
func modelName(s string) bool {
	if len(s) < 1 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

func (m *model) find(id ID) int {
	for i, n := range m.nodes {
		if n.ID == id && id != 0 {
			return i
		}
	}
	return -1
}

// apply applies op and returns nil or the sentinel Tree.Apply's error
// wraps. With several faults, a create reports them in Validate's order:
// the id, the name's form, the name taken, the parent.
func (m *model) apply(op Op, pos segment.Pos) error {
	switch op.Kind {
	case Create:
		if op.ID == 0 || op.ID < m.next || !modelName(op.Name) {
			return ErrConflict
		}
		for _, n := range m.nodes {
			if n.Name == op.Name {
				return ErrExists
			}
		}
		if op.Parent != 0 && m.find(op.Parent) < 0 {
			return ErrConflict
		}
		m.nodes = append(m.nodes, Node{ID: op.ID, Parent: op.Parent, Name: op.Name, Created: op.Created, Pos: pos})
		m.next, m.head = op.ID+1, op.ID
	case Delete:
		i := m.find(op.ID)
		if i < 0 {
			return ErrNotFound
		}
		parent := m.nodes[i].Parent
		var kept []Node
		for _, n := range m.nodes {
			if n.ID == op.ID {
				continue
			}
			if n.Parent == op.ID {
				n.Parent = parent
			}
			kept = append(kept, n)
		}
		m.nodes = kept
		if m.head == op.ID {
			m.head = parent
		}
	case Rollback:
		if m.find(op.ID) < 0 {
			return ErrNotFound
		}
		m.head, m.rollback = op.ID, pos
	default:
		return ErrConflict
	}
	return nil
}

func (m *model) setGen(id ID, gen Gen) error {
	i := m.find(id)
	switch {
	case i < 0:
		return ErrNotFound
	case gen < m.nodes[i].Gen:
		return ErrConflict
	}
	m.nodes[i].Gen = gen
	return nil
}

// modelNames are the names the model test draws from: a few valid ones
// that collide often, and invalid ones.
var modelNames = func() []string {
	var names []string
	for i := range 12 {
		names = append(names, fmt.Sprintf("s%d", i))
	}
	return append(names, "A.b_c-9", strings.Repeat("y", 128),
		"", ".s", "-s", "s 1", "vm@s1", "s/1", "é", strings.Repeat("y", 129))
}()

// TestModel applies random operations, valid and not, to a Tree and to the
// model: both accept and refuse the same ones, and after each the tree
// passes Check, equals the model and round-trips through its encoding.
func TestModel(t *testing.T) {
	const seeds, steps = 8, 400
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 0x5eed))
			tr, m := New(), &model{next: 1}
			if seed%2 == 1 { // the zero Tree, next 0
				tr, m = &Tree{}, &model{}
			}
			var applied, refused int
			// existing returns a snapshot's id, or any small id.
			existing := func() ID {
				if len(m.nodes) > 0 && r.IntN(4) > 0 {
					return m.nodes[r.IntN(len(m.nodes))].ID
				}
				return ID(r.IntN(int(m.next) + 3))
			}
			for step := range steps {
				pos := segment.Pos{Seq: uint64(step/8 + 1), Off: int64(step%8) * 512}
				var op Op
				switch p := r.IntN(100); {
				case p < 35: // a create as a user makes one, mostly
					op = Op{Kind: Create, ID: m.next, Parent: m.head, Name: modelNames[r.IntN(12)],
						Created: time.Unix(0, r.Int64()-(1<<62)).UTC()}
					if op.ID == 0 {
						op.ID = 1
					}
					if r.IntN(4) == 0 {
						op.ID += ID(r.IntN(3))
					}
					if r.IntN(4) == 0 {
						op.Parent = existing()
					}
				case p < 45: // a create of anything
					op = Op{Kind: Create, ID: ID(r.IntN(int(m.next) + 3)), Parent: ID(r.IntN(int(m.next) + 3)),
						Name: modelNames[r.IntN(len(modelNames))], Created: time.Unix(0, r.Int64()).UTC()}
				case p < 65:
					op = Op{Kind: Delete, ID: existing()}
				case p < 85:
					op = Op{Kind: Rollback, ID: existing()}
				case p < 90:
					op = Op{Kind: Kind([]uint8{0, 4, 5, 128, 255}[r.IntN(5)]), ID: existing(), Name: modelNames[r.IntN(len(modelNames))]}
				default:
					id := existing()
					gen := Gen(r.IntN(3))
					if i := m.find(id); i >= 0 {
						gen = m.nodes[i].Gen + Gen(r.IntN(3)) - 1
						if m.nodes[i].Gen == 0 {
							gen++
						}
					}
					if want, got := m.setGen(id, gen), tr.SetGen(id, gen); !errors.Is(got, want) {
						t.Fatalf("step %d: SetGen(%d, %d): %v; want %v", step, id, gen, got, want)
					}
					checkModel(t, tr, m, step)
					continue
				}
				before := tr.Encode()
				verr := tr.Validate(op)
				err := tr.Apply(op, pos)
				want := m.apply(op, pos)
				if want == nil {
					applied++
				} else {
					refused++
				}
				if !errors.Is(err, want) || !errors.Is(verr, want) {
					t.Fatalf("step %d: %+v: Apply: %v, Validate: %v; want %v", step, op, err, verr, want)
				}
				if want != nil && !bytes.Equal(before, tr.Encode()) {
					t.Fatalf("step %d: refused %+v changed the tree", step, op)
				}
				checkModel(t, tr, m, step)
			}
			// The mix exercises both sides.
			require.Greater(t, applied, steps/4)
			require.Greater(t, refused, steps/10)
		})
	}
}

// treeState is what checkModel compares; nodes is nil when there are none.
type treeState struct {
	Head, Next ID
	Rollback   segment.Pos
	Nodes      []Node
	Objects    map[ObjectID]bool
}

func stateOf(tr *Tree) treeState {
	s := treeState{Head: tr.Head(), Next: tr.Next(), Rollback: tr.LastRollback(), Objects: tr.Objects()}
	if tr.Len() > 0 {
		s.Nodes = tr.Nodes()
	}
	return s
}

func (m *model) state() treeState {
	s := treeState{Head: m.head, Next: m.next, Rollback: m.rollback, Objects: map[ObjectID]bool{}}
	if len(m.nodes) > 0 {
		s.Nodes = slices.Clone(m.nodes)
	}
	for _, n := range m.nodes {
		s.Objects[ObjectID{n.ID, n.Gen}] = true
	}
	return s
}

// checkModel compares tr with m and round-trips tr through its encoding.
// It runs after every step: testify is called only to report a failure.
func checkModel(t *testing.T, tr *Tree, m *model, step int) {
	if err := tr.Check(); err != nil {
		t.Fatalf("step %d: %v", step, err)
	}
	want, got := m.state(), stateOf(tr)
	if !reflect.DeepEqual(want, got) {
		require.Equal(t, want, got, "step %d", step)
	}
	for _, n := range m.nodes {
		if got, ok := tr.ByName(n.Name); !ok || got != n {
			t.Fatalf("step %d: ByName(%q) = %+v, %v; want %+v", step, n.Name, got, ok, n)
		}
		if got, ok := tr.ByID(n.ID); !ok || got != n {
			t.Fatalf("step %d: ByID(%d) = %+v, %v; want %+v", step, n.ID, got, ok, n)
		}
	}
	b := tr.Encode()
	d, err := DecodeTree(b, TreeVersion)
	if err != nil {
		t.Fatalf("step %d: decode: %v", step, err)
	}
	if dec := stateOf(d); !reflect.DeepEqual(got, dec) {
		require.Equal(t, got, dec, "step %d: decoded", step)
	}
	if !bytes.Equal(b, d.Encode()) {
		t.Fatalf("step %d: re-encoded differently", step)
	}
}
