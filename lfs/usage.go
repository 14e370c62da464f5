package lfs

import (
	"errors"
	"path"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/snapshot"
)

// Usage is where a volume's space goes (`hlfs du`). Live bytes are counted
// from scratch over the live map and every snapshot's map.
type Usage struct {
	Name string `json:"name"`
	// Provisioned is the volume size.
	Provisioned int64 `json:"provisioned_bytes"`
	// Mapped are the bytes of the live volume that hold data (not holes).
	Mapped int64 `json:"mapped_bytes"`
	// Stored are the bytes of all the volume's objects in the store.
	Stored int64 `json:"stored_bytes"`
	// SegmentBytes are the bytes of its log segments, Segments their count.
	SegmentBytes int64 `json:"segment_bytes"`
	Segments     int   `json:"segments"`
	// MetadataBytes are checkpoints and snapshot maps.
	MetadataBytes int64 `json:"metadata_bytes"`
	// PoolBytes are the files of deleted segments kept for new segments to
	// be written over (Options.SegmentPool); the volume's closing removes them.
	PoolBytes int64 `json:"pool_bytes"`
	// Live are the distinct bytes that the live volume or a snapshot names.
	Live int64 `json:"live_bytes"`
	// Garbage are segment bytes nothing names (record headers included):
	// what the cleaner can reclaim, except ReclaimBlocked.
	Garbage int64 `json:"garbage_bytes"`
	// ReclaimBlocked is the garbage in segments the cleaner may not touch
	// yet: after the oldest checkpoint kept (recovery replays them), or
	// named by a snapshot that clones were made from.
	ReclaimBlocked int64 `json:"reclaim_blocked_bytes"`
	// Extents is the number of extents of the live map; FragmentedBytes
	// are its mapped bytes in windows that gc's defragmentation would
	// rewrite in address order (hlfs gc --defrag).
	Extents         int   `json:"extents"`
	FragmentedBytes int64 `json:"fragmented_bytes"`
	// Snapshots lists each snapshot with the bytes only it names: what
	// removing it would make reclaimable.
	Snapshots []SnapshotUsage `json:"snapshots"`
}

// SnapshotUsage is one snapshot's share of a volume's space.
type SnapshotUsage struct {
	Name           string `json:"name"`
	ExclusiveBytes int64  `json:"exclusive_bytes"`
}

// DiskUsage reports a volume's space; it opens the volume read-only, so it
// works while the volume is served.
func DiskUsage(st objstore.Store, vol string) (Usage, error) {
	v, err := Open(st, vol, Options{ReadOnly: true})
	if err != nil {
		return Usage{}, err
	}
	defer v.Close()
	return v.Usage()
}

// Usage counts the volume's space now.
func (v *Volume) Usage() (Usage, error) {
	if err := v.checkOpen(false); err != nil {
		return Usage{}, err
	}
	u := Usage{Name: v.name, Provisioned: v.sb.size, Mapped: v.MappedBytes()}
	v.mu.Lock() // Clone writes to the tree it copies
	m := v.mu.m.Clone()
	v.mu.Unlock()
	u.Extents, u.FragmentedBytes = m.Len(), v.fragmentedBytes(m)
	v.gcMu.Lock() // one recount at a time
	live, snapMaps, err := v.recount()
	v.gcMu.Unlock()
	if err != nil {
		return u, err
	}
	for _, n := range live {
		u.Live += n
	}
	limit, err := v.cleanLimit()
	if err != nil {
		return u, err
	}
	pinnedSnaps, err := v.snapshotsWithClones()
	if err != nil {
		return u, err
	}
	pinned, err := v.clonePinnedSegments(pinnedSnaps, snapMaps)
	if err != nil {
		return u, err
	}
	_, attempts, err := segmentAttempts(v.st, v.name)
	if err != nil {
		return u, err
	}
	for seq, as := range attempts {
		var segBytes int64
		for _, a := range as {
			n, err := sizeIfPresent(v.st, segObjName(v.name, seq, a))
			if err != nil {
				return u, err
			}
			segBytes += n
		}
		u.SegmentBytes += segBytes
		u.Segments++
		if g := segBytes - live[seq]; g > 0 && (seq >= limit || pinned[seq]) {
			u.ReclaimBlocked += g
		}
	}
	u.Garbage = max(0, u.SegmentBytes-u.Live)
	for _, dir := range []string{ckptDir(v.name), snapshot.Dir(v.name)} {
		names, err := v.st.List(dir)
		if err != nil {
			return u, err
		}
		for _, n := range names {
			size, err := sizeIfPresent(v.st, path.Join(dir, n))
			if err != nil {
				return u, err
			}
			u.MetadataBytes += size
		}
	}
	pool, err := objstore.ListSizes(v.st, poolDir(v.name))
	if err != nil {
		return u, err
	}
	for _, n := range pool {
		u.PoolBytes += n
	}
	u.Stored = u.SegmentBytes + u.MetadataBytes + u.PoolBytes
	infos, err := v.Snapshots()
	if err != nil {
		return u, err
	}
	for _, s := range infos {
		u.Snapshots = append(u.Snapshots, SnapshotUsage{Name: s.Name, ExclusiveBytes: s.ExclusiveBytes})
	}
	return u, nil
}

// sizeIfPresent is the size of an object, 0 when it is gone meanwhile.
func sizeIfPresent(st objstore.Store, name string) (int64, error) {
	n, err := objectSize(st, name)
	if errors.Is(err, objstore.ErrNotExist) {
		return 0, nil
	}
	return n, err
}

// objectSize is the size of an object.
func objectSize(st objstore.Store, name string) (int64, error) {
	r, err := st.Open(name)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return r.Size(), nil
}
