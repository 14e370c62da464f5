package lfs

import (
	"errors"
	"fmt"
	"path"
	"strconv"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/snapshot"
)

// Clone families (snapshot.Lineage): a clone has VOL/lineage; a plain
// volume has none. Branch ids are allocated in the family root's
// ROOT/branches/, and a clone registers itself in its source's
// SOURCE/clones/ so the source keeps the data the clone's map names.

func lineageName(vol string) string         { return path.Join(vol, "lineage") }
func branchesDir(vol string) string         { return path.Join(vol, "branches") }
func clonesDir(vol string) string           { return path.Join(vol, "clones") }
func cloneRegName(src, clone string) string { return path.Join(clonesDir(src), clone) }

// readLineage loads vol's lineage; a volume without one is a plain volume.
func readLineage(st objstore.Store, vol string) (snapshot.Lineage, error) {
	b, err := readObject(st, lineageName(vol))
	if errors.Is(err, objstore.ErrNotExist) {
		return snapshot.PlainLineage(vol), nil
	}
	if err != nil {
		return snapshot.Lineage{}, err
	}
	l, err := snapshot.DecodeLineage(b)
	switch {
	case errors.Is(err, snapshot.ErrNewerVersion):
		return l, fmt.Errorf("%w: %s has a newer lineage version", ErrNewerFormat, lineageName(vol))
	case err != nil:
		return l, corruptf(lineageName(vol), 0, "%v", err)
	}
	return l, nil
}

// writeLineage replaces vol's lineage atomically.
func writeLineage(st objstore.Store, vol string, l snapshot.Lineage) error {
	return replaceObject(st, lineageName(vol), l.Encode())
}

// allocateBranch reserves a new branch id in the family registry of root for
// volume vol: ROOT/branches/<id> is created exclusively, so two clones made
// at once never share an id. Branch 0 is the root's own.
func allocateBranch(st objstore.Store, root, vol string) (uint16, error) {
	for attempt := 0; attempt < 100; attempt++ {
		names, err := st.List(branchesDir(root))
		if err != nil {
			return 0, err
		}
		next := uint64(1)
		for _, n := range names {
			if id, err := strconv.ParseUint(n, 16, 16); err == nil && id+1 > next {
				next = id + 1
			}
		}
		if next >= uint64(snapshot.NoBranch) {
			return 0, fmt.Errorf("lfs: family of %s has no branch ids left (65534 clones)", root)
		}
		err = writeObject(st, path.Join(branchesDir(root), fmt.Sprintf("%04x", next)), []byte(vol))
		if err == nil {
			return uint16(next), nil
		}
		if !errors.Is(err, objstore.ErrExist) {
			return 0, err
		}
	}
	return 0, fmt.Errorf("lfs: could not allocate a branch id in %s", root)
}

// liveClones returns the clones registered in src that still depend on it
// (optionally only those of snapshot id snap; 0 = any), sorted. A
// registration whose clone is gone or no longer names src as its source
// (removed, or flattened) is stale and ignored.
func liveClones(st objstore.Store, src string, snap snapshot.ID) ([]string, error) {
	names, err := st.List(clonesDir(src))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if ValidateName(n) != nil {
			continue
		}
		if _, err := readSuperblock(st, n); errors.Is(err, ErrNotFound) {
			continue
		}
		l, err := readLineage(st, n)
		if err != nil {
			return nil, err
		}
		if l.Source() != src || (snap != 0 && l.SourceSnap != snap) {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}
