package lfs

import (
	"fmt"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/snapshot"
)

// Changes between two points of a volume's history (incremental backup,
// NBD dirty bitmaps; docs/design.md "Changed blocks").
//
// A point is a snapshot or the live volume. Two points differ exactly where
// their maps name different record bytes (blockmap.Diff): a range written,
// zeroed or trimmed after the older point names a new record or a hole in
// the newer one. The cleaner does not make data differ: it redirects the
// live map and every snapshot map of the volume to the same copy records
// in one step (applyCopies, under snapMu), so bytes two maps shared before
// a pass they share after it. A clone's data that still comes from its
// source is named identically by all the clone's maps. The comparison
// reads maps only, never data: its cost is the extents of both maps in
// the range asked, and the store I/O is at most one load of each snapshot
// map object (kept in snapCache).

// ChangedRange is a run of bytes whose content differs between two points.
type ChangedRange struct {
	Off    int64 `json:"offset"`
	Length int64 `json:"length"`
	// Zero: the range reads as zeros at the newer point (trimmed, zeroed,
	// or cut by a rollback); otherwise the newer point holds data there.
	Zero bool `json:"zero"`
}

// diffRun is a run of a comparison.
type diffRun struct {
	off, n int64
	c      blockmap.Change
}

// maxDiffRuns bounds the runs one diffWindow collects under the locks.
const maxDiffRuns = 1024

// mapToken identifies which version of a snapshot's map the table shows:
// the in-memory map, or (when nil) the map object of generation gen.
type mapToken struct {
	m   *blockmap.Map
	gen snapshot.Gen
}

// snapTokenLockedMu returns the token of snapshot id; mu is held.
func (v *Volume) snapTokenLockedMu(id snapshot.ID) (mapToken, bool) {
	e, ok := v.mu.snaps.byID(id)
	if !ok {
		return mapToken{}, false
	}
	return mapToken{m: e.m, gen: e.Gen}, true
}

// resolveSnapMap returns snapshot id's map as the table shows it now, and
// its token: the in-memory map, or its map object (from snapCache, or read).
func (v *Volume) resolveSnapMap(id snapshot.ID) (*blockmap.Map, mapToken, error) {
	v.mu.RLock()
	tok, ok := v.snapTokenLockedMu(id)
	v.mu.RUnlock()
	if !ok {
		return nil, tok, fmt.Errorf("%w: %s (id %d)", ErrSnapshotNotFound, v.name, id)
	}
	if tok.m != nil {
		return tok.m, tok, nil
	}
	m, err := v.cachedSnapMap(id, tok.gen)
	return m, tok, err
}

// cachedSnapMap returns generation gen of snapshot id's map object through
// snapCache (map objects never change), caching it while the cache holds
// fewer than snapCacheExtents extents.
func (v *Volume) cachedSnapMap(id snapshot.ID, gen snapshot.Gen) (*blockmap.Map, error) {
	g := snapshot.ObjectID{ID: id, Gen: gen}
	v.snapCache.Lock()
	defer v.snapCache.Unlock()
	if m := v.snapCache.maps[g]; m != nil {
		return m, nil
	}
	m, err := loadSnapMap(v.st, v.name, v.sb.uid, id, gen)
	if err != nil {
		return nil, fmt.Errorf("lfs: load snapshot %d of %s: %w", id, v.name, err)
	}
	if v.snapCache.maps == nil {
		v.snapCache.maps = make(map[snapshot.ObjectID]*blockmap.Map)
	}
	cached := 0
	for _, c := range v.snapCache.maps {
		cached += c.Len()
	}
	if cached+m.Len() <= snapCacheExtents {
		v.snapCache.maps[g] = m
	}
	return m, nil
}

// diffWindow compares snapshot from with to (a snapshot, or the live map
// when to is 0) over [off, off+length), returning at most maxRuns runs from
// off on, consecutive and merged (fewer than the range when it stops).
//
// The two maps are taken at one cut: under snapMu, which the cleaner holds
// from redirecting the live map to publishing the snapshot maps it
// redirected, and under mu, with the tokens checked unchanged since the
// maps were resolved (else it resolves them again).
func (v *Volume) diffWindow(from, to snapshot.ID, off, length int64, maxRuns int) ([]diffRun, error) {
	for attempt := 0; ; attempt++ {
		fm, ftok, err := v.resolveSnapMap(from)
		if err != nil {
			return nil, err
		}
		var tm *blockmap.Map
		var ttok mapToken
		if to != 0 {
			if tm, ttok, err = v.resolveSnapMap(to); err != nil {
				return nil, err
			}
		}
		var runs []diffRun
		v.snapMu.Lock()
		v.mu.RLock()
		f2, okf := v.snapTokenLockedMu(from)
		t2, okt := v.snapTokenLockedMu(to)
		current := okf && f2 == ftok && (to == 0 || okt && t2 == ttok)
		if current {
			if to == 0 {
				tm = v.mu.m
			}
			blockmap.Diff(fm, tm, off, length, func(o, n int64, c blockmap.Change) bool {
				runs = append(runs, diffRun{o, n, c})
				return len(runs) < maxRuns
			})
		}
		v.mu.RUnlock()
		v.snapMu.Unlock()
		if current {
			return runs, nil
		}
		if attempt == 10 {
			return nil, fmt.Errorf("lfs: snapshot maps of %s keep changing while compared", v.name)
		}
	}
}

// snapIDs resolves the names of a comparison: from, and to ("" is the live
// volume, id 0).
func (v *Volume) snapIDs(from, to string) (snapshot.ID, snapshot.ID, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	f, ok := v.mu.snaps.tree.ByName(from)
	if !ok {
		return 0, 0, fmt.Errorf("%w: %s@%s", ErrSnapshotNotFound, v.name, from)
	}
	if to == "" {
		return f.ID, 0, nil
	}
	t, ok := v.mu.snaps.tree.ByName(to)
	if !ok {
		return 0, 0, fmt.Errorf("%w: %s@%s", ErrSnapshotNotFound, v.name, to)
	}
	return f.ID, t.ID, nil
}

// Changes calls fn, in order, for every range whose content differs
// between snapshot from and snapshot to ("" for the live volume), merged
// (adjacent ranges of one kind are one). When from is an ancestor of to
// (to was taken, or the volume written, after from), these are the ranges
// written, zeroed or trimmed since from, less those that were holes at
// both points (a hole written and trimmed again reads as it did). Data the
// cleaner moved, and a clone's data shared with its source, are not
// changes. For the live volume of a served volume each window of the walk
// is consistent, not the whole walk: use a snapshot as to for a point in
// time.
func (v *Volume) Changes(from, to string, fn func(ChangedRange) error) error {
	if err := v.checkOpen(false); err != nil {
		return err
	}
	f, t, err := v.snapIDs(from, to)
	if err != nil {
		return err
	}
	var cur ChangedRange
	flush := func() error {
		if cur.Length == 0 {
			return nil
		}
		err := fn(cur)
		cur = ChangedRange{}
		return err
	}
	size := v.sb.size
	for pos := int64(0); pos < size; {
		runs, err := v.diffWindow(f, t, pos, size-pos, maxDiffRuns)
		if err != nil {
			return err
		}
		for _, r := range runs {
			if r.c == blockmap.Same {
				if err := flush(); err != nil {
					return err
				}
				continue
			}
			zero := r.c == blockmap.ChangedZero
			if cur.Length > 0 && cur.Zero == zero && cur.Off+cur.Length == r.off {
				cur.Length += r.n
				continue
			}
			if err := flush(); err != nil {
				return err
			}
			cur = ChangedRange{Off: r.off, Length: r.n, Zero: zero}
		}
		last := runs[len(runs)-1]
		pos = last.off + last.n
	}
	return flush()
}

// ancestorsLockedMu returns the names of snapshot id and its ancestors,
// oldest first; mu is held.
func (v *Volume) ancestorsLockedMu(id snapshot.ID) []string {
	var names []string
	for id != 0 {
		n, ok := v.mu.snaps.tree.ByID(id)
		if !ok {
			break
		}
		names = append(names, n.Name)
		id = n.Parent
	}
	for i, j := 0, len(names)-1; i < j; i, j = i+1, j-1 {
		names[i], names[j] = names[j], names[i]
	}
	return names
}

// DirtyBitmaps names the snapshots the live volume descends from (the one
// it was last taken or rolled back from, and its ancestors), oldest first:
// the points it offers changes since over NBD (nbdserver.BitmapExport,
// qemu:dirty-bitmap:NAME).
func (v *Volume) DirtyBitmaps() []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.ancestorsLockedMu(v.mu.snaps.tree.Head())
}

// Dirty reports [off, off+length) as runs of bytes changed since snapshot
// name (dirty) or not, in order; it may cover only a prefix (the caller
// asks again). nbdserver.BitmapExport.
func (v *Volume) Dirty(name string, off, length int64, fn func(length int64, dirty bool) error) error {
	return v.dirty(name, 0, off, length, fn)
}

// dirty is Dirty for the point to (0: the live volume).
func (v *Volume) dirty(name string, to snapshot.ID, off, length int64, fn func(length int64, dirty bool) error) error {
	if err := v.checkOpen(false); err != nil {
		return err
	}
	if err := v.checkRange(off, length); err != nil {
		return err
	}
	v.mu.RLock()
	n, ok := v.mu.snaps.tree.ByName(name)
	v.mu.RUnlock()
	if !ok {
		return fmt.Errorf("%w: %s@%s", ErrSnapshotNotFound, v.name, name)
	}
	runs, err := v.diffWindow(n.ID, to, off, length, maxDiffRuns)
	if err != nil {
		return err
	}
	var pend int64
	var pendDirty bool
	for _, r := range runs { // ChangedData and ChangedZero are both dirty
		d := r.c != blockmap.Same
		if pend > 0 && d != pendDirty {
			if err := fn(pend, pendDirty); err != nil {
				return err
			}
			pend = 0
		}
		pend += r.n
		pendDirty = d
	}
	if pend > 0 {
		return fn(pend, pendDirty)
	}
	return nil
}

// DirtyBitmaps names the snapshot's proper ancestors, oldest first
// (nbdserver.BitmapExport).
func (s *SnapshotView) DirtyBitmaps() []string {
	s.v.mu.RLock()
	defer s.v.mu.RUnlock()
	n, ok := s.v.mu.snaps.tree.ByID(s.id)
	if !ok {
		return nil
	}
	return s.v.ancestorsLockedMu(n.Parent)
}

// Dirty reports [off, off+length) as runs of bytes that differ between
// snapshot name and this one (nbdserver.BitmapExport).
func (s *SnapshotView) Dirty(name string, off, length int64, fn func(length int64, dirty bool) error) error {
	return s.v.dirty(name, s.id, off, length, fn)
}
