package lfs

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
	"github.com/hlfs/hlfs/snapshot"
)

// ParseSnapshotRef splits "VOLUME@SNAPSHOT" (snapshot.ParseRef); both
// parts follow the volume name rule. Errors wrap ErrInvalidName.
func ParseSnapshotRef(ref string) (vol, snap string, err error) { return snapshot.ParseRef(ref) }

// SnapshotInfo describes one snapshot.
type SnapshotInfo struct {
	ID      uint32    `json:"id"`
	Name    string    `json:"name"`
	Parent  string    `json:"parent,omitempty"` // "" at the root of the tree
	Created time.Time `json:"created"`
	// ExclusiveBytes are mapped only by this snapshot: deleting it makes
	// them reclaimable.
	ExclusiveBytes int64    `json:"exclusive_bytes"`
	Clones         []string `json:"clones,omitempty"`
	// Head marks the snapshot the live volume descends from.
	Head bool `json:"head"`
}

// CreateSnapshot records a snapshot of every write completed before the
// call. It costs one log record and a flush, independent of volume size;
// the snapshot's map is written to its own object in the background.
func (v *Volume) CreateSnapshot(name string) error {
	if err := snapshot.ValidateName(name); err != nil {
		return err
	}
	if err := v.checkOpen(true); err != nil {
		return err
	}
	v.snapMu.Lock()
	defer v.snapMu.Unlock()
	v.mu.RLock()
	t := v.mu.snaps.tree
	op := snapshot.Op{Kind: snapshot.Create, ID: t.Next(), Parent: t.Head(), Created: time.Now().UTC(), Name: name}
	v.mu.RUnlock()
	return v.appendSnapshotOp(op, nil)
}

// appendSnapshotOp logs a snapshot operation, applies it under mu in log
// order (mapState.applySnapshotOp, as replay does), makes it durable and
// wakes the checkpointer (which materializes snapshots). The operation is
// checked against the tree before it is logged (snapMu, held, keeps the
// tree as checked until it is applied); target is a rollback's map.
func (v *Volume) appendSnapshotOp(op snapshot.Op, target *blockmap.Map) error {
	v.mu.RLock()
	err := v.mu.snaps.tree.Validate(op)
	v.mu.RUnlock()
	switch {
	case errors.Is(err, snapshot.ErrExists):
		return fmt.Errorf("%w: %s@%s", ErrSnapshotExists, v.name, op.Name)
	case errors.Is(err, snapshot.ErrNotFound):
		return fmt.Errorf("%w: %s (id %d)", ErrSnapshotNotFound, v.name, op.ID)
	case err != nil:
		return fmt.Errorf("lfs: snapshot %s on %s: %w", op.Kind, v.name, err)
	}
	rec := snapshot.Record(op)
	var applyErr error
	end, err := v.lw.append(rec, []int{len(rec)}, nil, nil, func(_ int, p placed) {
		v.mu.Lock()
		applyErr = v.mu.applySnapshotOp(op, segment.Pos{Seq: p.seq, Off: p.recOff}, target, v.sb.size)
		v.mu.Unlock()
	})
	if err == nil && applyErr != nil {
		// Validate passed under snapMu: only a bug gets here, and the log
		// now holds a record replay will refuse too.
		err = fmt.Errorf("lfs: snapshot %s on %s logged but not applied: %w", op.Kind, v.name, applyErr)
	}
	if err != nil {
		return err
	}
	if err := v.flushTo(end); err != nil {
		return err
	}
	select {
	case v.snapKick <- struct{}{}:
	default:
	}
	return nil
}

// DeleteSnapshot removes a snapshot: its children re-parent to its parent.
// It is refused while a clone depends on it. Only metadata changes; the
// space it held becomes reclaimable.
func (v *Volume) DeleteSnapshot(name string) error {
	if err := v.checkOpen(true); err != nil {
		return err
	}
	v.snapMu.Lock()
	defer v.snapMu.Unlock()
	v.mu.RLock()
	s, ok := v.mu.snaps.byName(name)
	v.mu.RUnlock()
	if !ok {
		return fmt.Errorf("%w: %s@%s", ErrSnapshotNotFound, v.name, name)
	}
	clones, err := liveClones(v.st, v.name, s.ID)
	if err != nil {
		return err
	}
	if len(clones) > 0 {
		return fmt.Errorf("%w: cannot remove %s@%s: clones %s depend on it (flatten or remove them first)",
			ErrHasClones, v.name, name, strings.Join(clones, ", "))
	}
	return v.appendSnapshotOp(snapshot.Op{Kind: snapshot.Delete, ID: s.ID}, nil)
}

// rollback makes the live volume the snapshot's content again. The volume
// must not be served (Rollback checks ownership by opening it).
func (v *Volume) rollback(name string) error {
	if err := v.checkOpen(true); err != nil {
		return err
	}
	v.snapMu.Lock()
	defer v.snapMu.Unlock()
	m, s, _, err := v.snapshotMap(name)
	if err != nil {
		return err
	}
	return v.appendSnapshotOp(snapshot.Op{Kind: snapshot.Rollback, ID: s.ID}, m)
}

// snapshotMap returns a snapshot's map, loading it from its object when it
// is not in memory (inMem tells which), and the snapshot as it was when
// looked up.
func (v *Volume) snapshotMap(name string) (m *blockmap.Map, s snapshot.Node, inMem bool, err error) {
	v.mu.RLock()
	e, ok := v.mu.snaps.byName(name)
	if ok {
		m = e.m // the cleaner may change the map and generation under mu
	}
	v.mu.RUnlock()
	if !ok {
		return nil, s, false, fmt.Errorf("%w: %s@%s", ErrSnapshotNotFound, v.name, name)
	}
	if m != nil {
		return m, e.Node, true, nil
	}
	if m, err = loadSnapMap(v.st, v.name, v.sb.uid, e.ID, e.Gen); err != nil {
		return nil, s, false, fmt.Errorf("lfs: load snapshot %s@%s: %w", v.name, name, err)
	}
	return m, e.Node, false, nil
}

// SnapshotNames lists the snapshot names in creation order; unlike
// Snapshots it loads no maps.
func (v *Volume) SnapshotNames() []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	names := make([]string, 0, v.mu.snaps.tree.Len())
	for _, s := range v.mu.snaps.tree.Nodes() {
		names = append(names, s.Name)
	}
	return names
}

// Snapshots lists the snapshot tree in creation order, with the bytes
// exclusive to each (which loads every snapshot's map: O(total map size)).
func (v *Volume) Snapshots() ([]SnapshotInfo, error) {
	if err := v.checkOpen(false); err != nil {
		return nil, err
	}
	v.mu.RLock()
	t := v.mu.snaps.tree.Clone()
	live := v.mu.m
	v.mu.RUnlock()
	nodes := t.Nodes()
	maps := make([]*blockmap.Map, len(nodes))
	for i, s := range nodes {
		m, _, _, err := v.snapshotMap(s.Name)
		if err != nil {
			return nil, err
		}
		maps[i] = m
	}
	out := make([]SnapshotInfo, len(nodes))
	for i, s := range nodes {
		others := []*blockmap.Map{live}
		for j, m := range maps {
			if j != i {
				others = append(others, m)
			}
		}
		v.mu.RLock() // live may change while we look
		excl := exclusiveBytes(maps[i], others)
		v.mu.RUnlock()
		info := SnapshotInfo{ID: uint32(s.ID), Name: s.Name, Created: s.Created, ExclusiveBytes: excl, Head: t.Head() == s.ID}
		if p, ok := t.ByID(s.Parent); ok {
			info.Parent = p.Name
		}
		clones, err := liveClones(v.st, v.name, s.ID)
		if err != nil {
			return nil, err
		}
		info.Clones = clones
		out[i] = info
	}
	return out, nil
}

// exclusiveBytes counts the bytes of m whose record data no other map uses
// at the same place.
func exclusiveBytes(m *blockmap.Map, others []*blockmap.Map) int64 {
	var total int64
	m.Ascend(func(e blockmap.Extent) bool {
		var shared []blockmap.Span
		for _, o := range others {
			o.Visit(e.Off, int64(e.Length), func(oe blockmap.Extent) bool {
				// Same record, and the same byte of it at the same offset.
				if blockmap.SameBytes(oe, e, oe.Off) {
					shared = append(shared, blockmap.Span{Lo: oe.Off, Hi: oe.End()})
				}
				return true
			})
		}
		sort.Slice(shared, func(i, j int) bool { return shared[i].Lo < shared[j].Lo })
		covered, reach := int64(0), e.Off
		for _, s := range shared {
			lo := max(s.Lo, reach)
			if s.Hi > lo {
				covered += s.Hi - lo
				reach = s.Hi
			}
		}
		total += int64(e.Length) - covered
		return true
	})
	return total
}

// SnapshotView is a read-only view of a snapshot, an nbdserver.Export.
type SnapshotView struct {
	v    *Volume
	name string
	id   snapshot.ID
	mu   sync.Mutex
	m    *blockmap.Map // the snapshot's map as last seen
	gen  snapshot.Gen  // its generation, when it came from a map object
	mem  bool          // m was the in-memory map
}

// SnapshotView opens a read-only view of a snapshot. It follows the
// snapshot's map as the cleaner moves its data. It stays valid while the
// volume is open even if the snapshot is deleted meanwhile, until the
// cleaner frees the data only the snapshot held (reads then fail).
func (v *Volume) SnapshotView(name string) (*SnapshotView, error) {
	if err := v.checkOpen(false); err != nil {
		return nil, err
	}
	m, s, inMem, err := v.snapshotMap(name)
	if err != nil {
		return nil, err
	}
	return &SnapshotView{v: v, m: m, name: name, id: s.ID, gen: s.Gen, mem: inMem}, nil
}

// current returns the snapshot's map now: the cleaner may have moved data
// it names since the view last looked.
func (s *SnapshotView) current() (*blockmap.Map, error) {
	s.v.mu.RLock()
	var curMap *blockmap.Map
	var curGen snapshot.Gen
	cur, live := s.v.mu.snaps.byID(s.id)
	if live {
		curMap, curGen = cur.m, cur.Gen
	}
	s.v.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !live: // deleted: keep what we have
	case curMap != nil:
		s.m, s.mem = curMap, true
	case s.mem || curGen != s.gen:
		m, err := loadSnapMap(s.v.st, s.v.name, s.v.sb.uid, s.id, curGen)
		if err != nil {
			return nil, fmt.Errorf("lfs: load snapshot %s: %w", s.Name(), err)
		}
		s.m, s.gen, s.mem = m, curGen, false
	}
	return s.m, nil
}

// Name returns "VOLUME@SNAPSHOT".
func (s *SnapshotView) Name() string { return s.v.name + "@" + s.name }

// Size returns the volume size.
func (s *SnapshotView) Size() int64 { return s.v.sb.size }

// BlockSize returns the volume's block size.
func (s *SnapshotView) BlockSize() int { return s.v.sb.blockSize }

// ReadAt reads the snapshot's bytes.
func (s *SnapshotView) ReadAt(p []byte, off int64) error {
	if err := s.v.checkOpen(false); err != nil {
		return err
	}
	if err := s.v.checkRange(off, int64(len(p))); err != nil {
		return err
	}
	s.v.readGate.RLock()
	defer s.v.readGate.RUnlock()
	m, err := s.current()
	if err != nil {
		return err
	}
	return s.v.readMap(m, nil, p, off)
}

// WriteAt fails: snapshots are read-only.
func (s *SnapshotView) WriteAt([]byte, int64, bool) error { return ErrReadOnly }

// Zero fails: snapshots are read-only.
func (s *SnapshotView) Zero(int64, int64, bool, bool) error { return ErrReadOnly }

// Flush has nothing to do.
func (s *SnapshotView) Flush() error { return nil }

// Allocation reports the snapshot's data and holes.
func (s *SnapshotView) Allocation(off, length int64, fn func(length int64, hole bool) error) error {
	if err := s.v.checkRange(off, length); err != nil {
		return err
	}
	m, err := s.current()
	if err != nil {
		return err
	}
	return allocation(m, nil, off, length, fn)
}

// Close releases the view.
func (s *SnapshotView) Close() error { return nil }

// ListSnapshots lists a volume's snapshots; it opens the volume read-only,
// so it works while the volume is served.
func ListSnapshots(st objstore.Store, vol string) ([]SnapshotInfo, error) {
	v, err := Open(st, vol, Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer v.Close()
	return v.Snapshots()
}

// Rollback returns a volume that nobody serves to a snapshot's content. The
// cost is a log record and a checkpoint. Writes since the snapshot stay in
// the log (reachable from later snapshots) until the cleaner frees them.
func Rollback(st objstore.Store, vol, snap string) error {
	v, err := Open(st, vol, Options{})
	if err != nil {
		return err
	}
	if err := v.rollback(snap); err != nil {
		_ = v.Close()
		return err
	}
	return v.Close()
}
