package snapshot

import (
	"fmt"
	"io"
)

// DrawItem is one snapshot to draw: its name, its parent's name ("" at a
// root), the text shown after the name, and whether it is the head.
type DrawItem struct {
	Name   string
	Parent string
	Label  string
	Head   bool
}

// LiveMarker stands for the live volume in a drawn tree.
const LiveMarker = "* (live volume)"

// Draw draws a volume's snapshots as a tree under the volume's name (root),
// children in the order given (creation order), and the live volume as the
// last child of the head:
//
//	vm1
//	└── s1  LABEL
//	    ├── s2  LABEL
//	    └── * (live volume)
//
// A snapshot whose parent is not among items, or whose parents form a
// cycle (corrupt input), hangs from the root rather than vanish; each item
// is drawn once.
func Draw(w io.Writer, root string, items []DrawItem) {
	known := make(map[string]bool, len(items))
	for _, s := range items {
		known[s.Name] = true
	}
	parent := make(map[string]string, len(items))
	for _, s := range items {
		if known[s.Parent] {
			parent[s.Name] = s.Parent
		}
	}
	// A snapshot whose chain of parents never reaches a root (a cycle) is
	// drawn as a root's child too.
	for _, s := range items {
		p, steps := parent[s.Name], 0
		for p != "" && steps <= len(items) {
			p, steps = parent[p], steps+1
		}
		if p != "" {
			parent[s.Name] = ""
		}
	}
	// children by parent name; "" is the volume, the root.
	children := make(map[string][]DrawItem)
	for _, s := range items {
		children[parent[s.Name]] = append(children[parent[s.Name]], s)
	}
	// The live volume's parent is the head snapshot no head child follows.
	live := ""
	for _, s := range items {
		if !s.Head {
			continue
		}
		deepest := true
		for _, ch := range children[s.Name] {
			if ch.Head {
				deepest = false
			}
		}
		if deepest {
			live = s.Name
		}
	}
	fmt.Fprintln(w, root)
	drawn := make(map[string]bool)
	var draw func(parent, indent string)
	draw = func(parent, indent string) {
		kids := children[parent]
		n := len(kids)
		if parent == live {
			n++
		}
		for i := range n {
			branch, next := "├── ", "│   "
			if i == n-1 {
				branch, next = "└── ", "    "
			}
			if i == len(kids) {
				fmt.Fprintf(w, "%s%s%s\n", indent, branch, LiveMarker)
				continue
			}
			s := kids[i]
			if drawn[s.Name] {
				continue
			}
			drawn[s.Name] = true
			line := s.Name
			if s.Label != "" {
				line += "  " + s.Label
			}
			fmt.Fprintf(w, "%s%s%s\n", indent, branch, line)
			draw(s.Name, indent+next)
		}
	}
	draw("", "")
}
