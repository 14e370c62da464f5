package lfs

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/snapshot"
)

// snapshotWait bounds how long Clone waits for a snapshot taken moments ago
// by a serving process to have its map object written.
const snapshotWait = 10 * time.Second

// Clone makes newVol a writable clone of srcVol@snap in constant time: the
// clone's map starts as the snapshot's map, pointing into srcVol's segments;
// writes go to the clone's own. The snapshot cannot be removed while the
// clone depends on it (see Flatten).
func Clone(st objstore.Store, srcVol, snap, newVol string) error {
	for _, n := range []string{srcVol, snap, newVol} {
		if err := ValidateName(n); err != nil {
			return err
		}
	}
	srcSB, err := readSuperblock(st, srcVol)
	if err != nil {
		return err
	}
	if _, err := readSuperblock(st, newVol); err == nil {
		return fmt.Errorf("%w: %s", ErrExists, newVol)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	srcLin, err := readLineage(st, srcVol)
	if err != nil {
		return err
	}
	id, err := findSnapshot(st, srcVol, snap)
	if err != nil {
		return err
	}
	if err := waitForSnapObject(st, srcVol, id, snapshotWait); err != nil {
		return fmt.Errorf("lfs: the map of %s@%s is not written yet: %w", srcVol, snap, err)
	}
	branch, err := allocateBranch(st, srcLin.Root, newVol)
	if err != nil {
		return err
	}
	// Register first: from now on snapshot rm on the source sees the clone
	// once its superblock exists; a crash leaves a stale registration that
	// liveClones ignores.
	reg := cloneRegName(srcVol, newVol)
	_ = st.Remove(reg)
	if err := writeObject(st, reg, []byte(snap)); err != nil {
		return err
	}
	lin := snapshot.Lineage{Branch: branch, SourceBranch: srcLin.Branch, SourceSnap: id, SourceName: snap,
		SourceUID: srcSB.uid, Volumes: map[uint16]string{branch: newVol}, Root: srcLin.Root}
	for b, n := range srcLin.Volumes {
		lin.Volumes[b] = n
	}
	if err := writeLineage(st, newVol, lin); err != nil {
		return err
	}
	sb := srcSB
	sb.uid, sb.created = newUID(), nowUTC()
	// The superblock comes last: the clone exists once it does.
	if err := createSuperblock(st, newVol, sb); err != nil {
		return err
	}
	indexCreated(st, newVol)
	return nil
}

// findSnapshot returns the id of vol@snap, reading the volume read-only.
func findSnapshot(st objstore.Store, vol, snap string) (snapshot.ID, error) {
	v, err := Open(st, vol, Options{ReadOnly: true})
	if err != nil {
		return 0, err
	}
	defer v.Close()
	v.mu.RLock()
	defer v.mu.RUnlock()
	s, ok := v.mu.snaps.tree.ByName(snap)
	if !ok {
		return 0, fmt.Errorf("%w: %s@%s", ErrSnapshotNotFound, vol, snap)
	}
	return s.ID, nil
}

// waitForSnapObject waits until some generation of snapshot id's map
// object exists.
func waitForSnapObject(st objstore.Store, vol string, id snapshot.ID, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		_, err := latestSnapObject(st, vol, id)
		if err == nil {
			return nil
		}
		if !errors.Is(err, objstore.ErrNotExist) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Flatten copies into a clone every byte it still reads from its source, so
// it no longer depends on it; the source snapshot can then be removed. The
// clone must not be served, must have no clones of its own, and its own
// snapshots must not share data with the source (remove them first).
func Flatten(st objstore.Store, vol string, progress func(done, total int64)) error {
	v, err := Open(st, vol, Options{})
	if err != nil {
		return err
	}
	err = v.flatten(progress)
	if cerr := v.Close(); err == nil {
		err = cerr
	}
	return err
}

func (v *Volume) flatten(progress func(done, total int64)) error {
	src := v.lin.Source()
	if src == "" {
		return fmt.Errorf("%w: %s", ErrNotClone, v.name)
	}
	clones, err := liveClones(v.st, v.name, 0)
	if err != nil {
		return err
	}
	if len(clones) > 0 {
		return fmt.Errorf("%w: cannot flatten %s: clones %s read through it (flatten them first)", ErrHasClones, v.name, strings.Join(clones, ", "))
	}
	v.mu.RLock()
	snaps := v.mu.snaps.tree.Nodes()
	v.mu.RUnlock()
	for _, s := range snaps {
		m, _, _, err := v.snapshotMap(s.Name)
		if err != nil {
			return err
		}
		if hasForeign(m, v.lin.Branch) {
			return fmt.Errorf("%w: cannot flatten %s: its snapshot %s still shares data with %s (remove it first)", ErrHasSnapshots, v.name, s.Name, src)
		}
	}
	var foreign []blockmap.Extent
	var total int64
	v.mu.RLock()
	v.mu.m.Ascend(func(e blockmap.Extent) bool {
		if e.Branch != v.lin.Branch {
			foreign = append(foreign, e)
			total += int64(e.Length)
		}
		return true
	})
	v.mu.RUnlock()
	var done int64
	const chunk = 1 << 20 // a run extent may be as long as a segment
	buf := make([]byte, 0, chunk)
	for _, whole := range foreign {
		for off := whole.Off; off < whole.End(); off += chunk {
			e := blockmap.Clip(whole, off, min(off+chunk, whole.End()))
			buf = buf[:e.Length]
			if err := v.readExtent(buf, e); err != nil {
				return err
			}
			if err := v.WriteAt(buf, e.Off, false); err != nil {
				return err
			}
			done += int64(e.Length)
			if progress != nil {
				progress(done, total)
			}
		}
	}
	if err := v.Flush(); err != nil {
		return err
	}
	if err := v.checkpoint(); err != nil {
		return err
	}
	// No map names the source any more: detach. The clone becomes the root
	// of its own family, keeping its branch id (reserved in its registry).
	own := path.Join(branchesDir(v.name), fmt.Sprintf("%04x", v.lin.Branch))
	if err := writeObject(v.st, own, []byte(v.name)); err != nil && !errors.Is(err, objstore.ErrExist) {
		return err
	}
	lin := snapshot.Lineage{Branch: v.lin.Branch, SourceBranch: snapshot.NoBranch, Volumes: map[uint16]string{v.lin.Branch: v.name}, Root: v.name}
	if err := writeLineage(v.st, v.name, lin); err != nil {
		return err
	}
	// The source changed: the store index reads the lineage again.
	v.indexGen.Add(1)
	_ = v.st.Remove(cloneRegName(src, v.name)) // a leftover is stale, and ignored
	if progress != nil {
		progress(total, total)
	}
	return nil
}

func hasForeign(m *blockmap.Map, branch uint16) bool {
	found := false
	m.Ascend(func(e blockmap.Extent) bool {
		found = e.Branch != branch
		return !found
	})
	return found
}
