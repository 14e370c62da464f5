package lfs

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/hlfs/hlfs/internal/blockmap"
)

// Check verifies an open volume's invariants, as bbolt's tx.Check does for
// a transaction: the live map's and every in-memory snapshot map's
// (blockmap.Map.Check), the snapshot tree's (snapshot.Tree.Check), that the
// runtime table has an entry for exactly the tree's snapshots, and the
// space books against a recount over every map when they claim to be
// exact. It reads snapshot map objects that are not in memory. Tests run
// it at the end of every engine test; fsck uses the books part. The error
// wraps ErrCorrupt and lists every problem found.
func (v *Volume) Check() error { return v.checkCut(v.cut()) }

// stateCut is a copy of a volume's maps and books taken in log order.
type stateCut struct {
	live  *blockmap.Map
	snaps *snapTable
	exact bool
	books map[uint64]int64
}

// cut copies the maps and books between two appends.
func (v *Volume) cut() (c stateCut) {
	v.atLogCut(func(logCut) {
		v.mu.Lock() // Clone writes to the tree it copies
		defer v.mu.Unlock()
		c = stateCut{live: v.mu.m.Clone(), snaps: v.mu.snaps.copyWithMaps(),
			exact: v.mu.books.exact, books: v.mu.books.copyCounts()}
	})
	return c
}

// checkCut checks a cut (Check).
func (v *Volume) checkCut(c stateCut) error {
	var probs []error
	if err := c.live.Check(v.sb.size); err != nil {
		probs = append(probs, fmt.Errorf("live map: %w", err))
	}
	t := c.snaps
	if err := t.tree.Check(); err != nil {
		probs = append(probs, err)
	}
	for _, s := range t.tree.Nodes() {
		r := t.run[s.ID]
		switch {
		case r == nil:
			probs = append(probs, fmt.Errorf("snapshot %s has no runtime state", s.Name))
		case r.m != nil:
			if err := r.m.Check(v.sb.size); err != nil {
				probs = append(probs, fmt.Errorf("snapshot %s's map: %w", s.Name, err))
			}
		case !r.durable:
			probs = append(probs, fmt.Errorf("snapshot %s has neither a map in memory nor a durable map object", s.Name))
		}
	}
	if len(t.run) != t.tree.Len() {
		probs = append(probs, fmt.Errorf("%d runtime entries for %d snapshots", len(t.run), t.tree.Len()))
	}
	if c.exact && len(probs) == 0 {
		if err := v.compareBooks(c.books, c.live, t); err != nil {
			probs = append(probs, err)
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, v.name, errors.Join(probs...))
	}
	return nil
}

// compareBooks compares counts with a recount over live and t's maps.
func (v *Volume) compareBooks(have map[uint64]int64, live *blockmap.Map, t *snapTable) error {
	snapMaps, err := v.loadSnapshotMaps(t)
	if err != nil {
		return err
	}
	if d := diffCounts(have, countLive(v.lin.Branch, live, slices.Collect(maps.Values(snapMaps)))); d != "" {
		return fmt.Errorf("%w: space books of %s differ from a recount: %s", ErrCorrupt, v.name, d)
	}
	return nil
}
