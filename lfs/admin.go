package lfs

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/snapshot"
)

// Info describes a volume as the store shows it.
type Info struct {
	Name        string       `json:"name"`
	Size        int64        `json:"size"`
	BlockSize   int          `json:"block_size"`
	Compress    bool         `json:"compress"`
	SegmentSize int          `json:"segment_size"`
	Replication int          `json:"replication,omitempty"`
	Created     time.Time    `json:"created"`
	Segments    int          `json:"segments"`
	BytesStored int64        `json:"bytes_stored"`
	Checkpoints int          `json:"checkpoints"`
	Owner       *OwnerRecord `json:"owner,omitempty"`
	// Source is "VOLUME@SNAPSHOT" for a clone, "" otherwise.
	Source string `json:"source,omitempty"`
	// Clones are the volumes cloned from this one's snapshots.
	Clones []string `json:"clones,omitempty"`
	// Damage says what is wrong with a damaged volume's superblock; then
	// only Name, Segments, BytesStored, Checkpoints and Owner are known.
	Damage string `json:"damage,omitempty"`
}

// Stat describes a volume without opening it. For a damaged volume it
// returns the *DamagedError and an Info with Damage set and the counts of
// its objects.
func Stat(st objstore.Store, name string) (Info, error) {
	if err := ValidateName(name); err != nil {
		return Info{}, err
	}
	sb, err := readSuperblock(st, name)
	var damaged *DamagedError
	if errors.As(err, &damaged) {
		info := Info{Name: name, Damage: damaged.Reason}
		if err := countObjects(st, name, &info); err != nil {
			return Info{}, err
		}
		info.Owner, _, _ = liveOwner(st, name)
		return info, damaged
	}
	if err != nil {
		return Info{}, err
	}
	info := Info{Name: name, Size: sb.size, BlockSize: sb.blockSize, Compress: sb.compress,
		SegmentSize: sb.segmentSize, Created: sb.created, Replication: sb.replication}
	if err := countObjects(st, name, &info); err != nil {
		return Info{}, err
	}
	if info.Owner, _, err = liveOwner(st, name); err != nil {
		return Info{}, err
	}
	lin, err := readLineage(st, name)
	if err != nil {
		return Info{}, err
	}
	if src := lin.Source(); src != "" {
		info.Source = src + "@" + lin.SourceName
	}
	if info.Clones, err = liveClones(st, name, 0); err != nil {
		return Info{}, err
	}
	return info, nil
}

// countObjects fills in the segments, checkpoints and bytes stored of info:
// one listing per folder (objstore.ListSizes).
func countObjects(st objstore.Store, name string, info *Info) error {
	segSeen := map[string]bool{}
	for _, dir := range []string{segDir(name), ckptDir(name)} {
		sizes, err := objstore.ListSizes(st, dir)
		if errors.Is(err, objstore.ErrNotFolder) {
			continue
		}
		if err != nil {
			return err
		}
		for n, size := range sizes {
			info.BytesStored += size
			if dir == segDir(name) {
				// Attempts of one segment count once, as du counts them.
				if seq, _, _ := strings.Cut(n, "."); !segSeen[seq] {
					segSeen[seq] = true
					info.Segments++
				}
			} else {
				info.Checkpoints++
			}
		}
	}
	return nil
}

// Remove deletes a volume and all its objects. It takes ownership first, so
// it fails with ErrInUse while the volume is served. It also removes a
// damaged volume, and the leftovers of an interrupted create, clone or
// remove, as long as the folder holds only names hlfs writes.
func Remove(st objstore.Store, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	sb, sbErr := readSuperblock(st, name)
	if errors.Is(sbErr, ErrNotFound) {
		names, lerr := leftovers(st, name)
		if lerr != nil {
			return lerr
		}
		if len(names) == 0 {
			return sbErr
		}
		for _, n := range names {
			if !ownEntry(n) {
				return fmt.Errorf("%w: %s: the folder holds %s, which hlfs never writes; remove it by hand", ErrNotFound, name, n)
			}
		}
	} else if sbErr != nil && !errors.Is(sbErr, ErrDamaged) {
		return sbErr
	}
	clones, err := liveClones(st, name, 0)
	if err != nil {
		return err
	}
	if len(clones) > 0 {
		return fmt.Errorf("%w: cannot remove %s: clones %s read its data (flatten or remove them first)", ErrHasClones, name, strings.Join(clones, ", "))
	}
	lin, err := readLineage(st, name)
	if err != nil && !IsCorruption(err) {
		return err
	}
	own, err := acquireOwner(st, name, "", nil, 0)
	if err != nil {
		return err
	}
	// The index entries go first, then the superblock: from then on the
	// volume no longer exists, even if removing the rest is interrupted.
	if err := indexRemoving(st, name, sb, sbErr == nil); err != nil {
		_ = own.release()
		return err
	}
	if err := st.Remove(superName(name)); err != nil && !errors.Is(err, objstore.ErrNotExist) {
		_ = own.release()
		return err
	}
	if src := lin.Source(); src != "" {
		_ = st.Remove(cloneRegName(src, name)) // a leftover is stale, and ignored
	}
	for _, dir := range []string{segDir(name), poolDir(name), ckptDir(name), snapshot.Dir(name), gcDir(name), readersDir(name), clonesDir(name), branchesDir(name), lostFoundDir(name), ownerDir(name), name} {
		names, err := st.List(dir)
		if err != nil {
			return err
		}
		for _, n := range names {
			p := path.Join(dir, n)
			if err := st.Remove(p); err != nil && !errors.Is(err, objstore.ErrNotExist) && dir != name {
				return fmt.Errorf("lfs: remove %s: %w", p, err)
			}
		}
		if dir != name {
			_ = st.Remove(dir) // empty folder; stores with implicit folders have none
		}
	}
	if err := st.Remove(name); err != nil && !errors.Is(err, objstore.ErrNotExist) {
		return fmt.Errorf("lfs: remove %s: %w", name, err)
	}
	return nil
}

// Resize changes the size of a volume that nobody serves. Growing only
// rewrites the superblock; shrinking (allowShrink) first records a hole over
// the cut-off range, so the data there is gone.
func Resize(st objstore.Store, name string, size int64, allowShrink bool) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	sb, err := readSuperblock(st, name)
	if err != nil {
		return err
	}
	if err := checkSize(size, sb.blockSize); err != nil {
		return err
	}
	if size == sb.size {
		return nil
	}
	if size < sb.size && !allowShrink {
		return fmt.Errorf("%w %s from %d to %d bytes: data beyond the new end would be lost (use --allow-shrink)", ErrShrink, name, sb.size, size)
	}
	v, err := Open(st, name, Options{CheckpointInterval: -1})
	if err != nil {
		return err
	}
	if size < sb.size {
		err = v.Zero(size, sb.size-size, true, true)
	}
	// Keep ownership while the superblock changes.
	if cerr := v.closeLog(false); err == nil {
		err = cerr
	}
	if err == nil {
		sb.size = size
		err = writeSuperblock(st, name, sb)
	}
	if err == nil {
		v.sb.size = size
	}
	v.releaseOwner()
	if x := indexFor(st); x != nil {
		x.closed(v)
	}
	return err
}
