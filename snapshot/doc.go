// Package snapshot is the snapshot tree of a volume as a deterministic core:
// the rules of snapshot operations, their log record and checkpoint codecs,
// clone lineage, snapshot map object names and the names of volumes and
// snapshots. It does no I/O and knows nothing of stores, maps or locks; lfs
// keeps a Tree per volume and applies operations to it, the same way when it
// replays the log and when a user asks.
//
// A volume's snapshots form a tree: each Node has a parent (0 at a root),
// and the live volume descends from the head. Three operations change it
// (Op): create a snapshot of the live volume (a child of the head, which it
// becomes), delete one (its children re-parent to its parent), and roll the
// live volume back to one (which becomes the head; later writes fork a new
// branch of the tree). Tree.Apply checks each against the tree and applies
// it; Tree.Check verifies the invariants.
//
// Use:
//
//	t := snapshot.New()
//	op := snapshot.Op{Kind: snapshot.Create, ID: t.Next(), Parent: t.Head(), Name: "s1", Created: now}
//	if err := t.Apply(op, pos); err != nil { ... }
//	rec := snapshot.EncodeOp(op) // the meta record's payload
//
// Nothing here is safe for concurrent use: the owner of a Tree guards it.
// The encodings are specified in docs/format.md and beside each codec; they
// are part of the format, never change.
package snapshot
