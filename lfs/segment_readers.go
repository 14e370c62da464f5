package lfs

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/snapshot"
)

// segmentReaders caches open readers of closed segments of every branch a
// volume's maps may name.
type segmentReaders struct {
	st       objstore.Store
	volumes  map[uint16]string // branch → volume folder (lineage.volumes)
	own      uint16
	attempts *attemptMap // attempts of the volume's own segments
	// mu guards open. Reads run under RLock so eviction (under Lock) never
	// closes a reader in use; opening happens under Lock.
	mu   sync.RWMutex
	open map[segKey]objstore.Reader
}

// segKey names a segment in a family.
type segKey struct {
	branch uint16
	seq    uint64
}

const maxOpenSegments = 512

func newSegmentReaders(st objstore.Store, lin snapshot.Lineage, attempts *attemptMap) *segmentReaders {
	return &segmentReaders{st: st, volumes: lin.Volumes, own: lin.Branch, attempts: attempts,
		open: make(map[segKey]objstore.Reader)}
}

// name returns the object name of segment k: for the volume's own segments
// the attempt in use, for an ancestor's the plain name (see openForeign).
func (s *segmentReaders) name(k segKey) string {
	vol, ok := s.volumes[k.branch]
	if !ok {
		vol = fmt.Sprintf("<unknown branch %d>", k.branch)
	}
	if k.branch == s.own {
		return s.attempts.name(vol, k.seq)
	}
	return segName(vol, k.seq)
}

// openSegment opens segment k. An ancestor's segment may have been written
// again after a failure; its writer removed the failed attempt once the new
// one was durable, so when "<seq>" is missing the highest attempt is it.
func (s *segmentReaders) openSegment(k segKey) (objstore.Reader, error) {
	r, err := s.st.Open(s.name(k))
	if err == nil || k.branch == s.own || !errors.Is(err, objstore.ErrNotExist) {
		return r, err
	}
	_, attempts, lerr := segmentAttempts(s.st, s.volumes[k.branch])
	if lerr != nil || len(attempts[k.seq]) == 0 {
		return nil, err
	}
	best := slices.Max(attempts[k.seq])
	return s.st.Open(segObjName(s.volumes[k.branch], k.seq, best))
}

// readAt reads len(p) bytes at off of segment k.
func (s *segmentReaders) readAt(k segKey, p []byte, off int64) error {
	s.mu.RLock()
	r, ok := s.open[k]
	if ok {
		defer s.mu.RUnlock()
		return s.read(r, k, p, off)
	}
	s.mu.RUnlock()

	s.mu.Lock()
	if _, ok = s.open[k]; !ok {
		if _, known := s.volumes[k.branch]; !known {
			s.mu.Unlock()
			return corruptf(s.name(k), off, "the map names branch %d, which is not in this volume's lineage", k.branch)
		}
		r, err := s.openSegment(k)
		if err != nil {
			s.mu.Unlock()
			return fmt.Errorf("lfs: open segment %s: %w", s.name(k), err)
		}
		if len(s.open) >= maxOpenSegments {
			for k, old := range s.open { // evict one at random
				_ = old.Close()
				delete(s.open, k)
				break
			}
		}
		s.open[k] = r
	}
	s.mu.Unlock()
	return s.readAt(k, p, off)
}

func (s *segmentReaders) read(r objstore.Reader, k segKey, p []byte, off int64) error {
	if off+int64(len(p)) > r.Size() {
		return corruptf(s.name(k), off, "record of %d bytes runs past the segment's end (%d bytes)", len(p), r.Size())
	}
	if _, err := r.ReadAt(p, off); err != nil {
		return fmt.Errorf("lfs: read segment %s at %d: %w", s.name(k), off, err)
	}
	return nil
}

func (s *segmentReaders) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, r := range s.open {
		_ = r.Close()
		delete(s.open, k)
	}
}

// forget closes and drops the cached reader of segment k (deleted by the
// cleaner).
func (s *segmentReaders) forget(k segKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.open[k]; ok {
		_ = r.Close()
		delete(s.open, k)
	}
}

// keyOf names the segment object holding the record e points into.
func keyOf(e blockmap.Extent) segKey { return segKey{branch: e.Branch, seq: uint64(e.Seq)} }
