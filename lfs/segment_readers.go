package lfs

import (
	"fmt"
	"sync"

	"github.com/hlfs/hlfs/internal/objstore"
)

// segmentReaders caches open readers of closed segments of every branch a
// volume's maps may name.
type segmentReaders struct {
	st      objstore.Store
	volumes map[uint16]string // branch → volume folder (lineage.volumes)
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

func newSegmentReaders(st objstore.Store, volumes map[uint16]string) *segmentReaders {
	return &segmentReaders{st: st, volumes: volumes, open: make(map[segKey]objstore.Reader)}
}

func (s *segmentReaders) name(k segKey) string {
	vol, ok := s.volumes[k.branch]
	if !ok {
		vol = fmt.Sprintf("<unknown branch %d>", k.branch)
	}
	return segName(vol, k.seq)
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
	if r, ok = s.open[k]; !ok {
		if _, known := s.volumes[k.branch]; !known {
			s.mu.Unlock()
			return corruptf(s.name(k), off, "the map names branch %d, which is not in this volume's lineage", k.branch)
		}
		var err error
		if r, err = s.st.Open(s.name(k)); err != nil {
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
