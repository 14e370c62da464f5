package lfs

import (
	"fmt"
	"sync"

	"github.com/hlfs/hlfs/internal/objstore"
)

// segmentReaders caches open readers of closed segments.
type segmentReaders struct {
	st  objstore.Store
	vol string
	// mu guards open. Reads run under RLock so eviction (under Lock) never
	// closes a reader in use; opening happens under Lock.
	mu   sync.RWMutex
	open map[uint64]objstore.Reader
}

const maxOpenSegments = 512

func newSegmentReaders(st objstore.Store, vol string) *segmentReaders {
	return &segmentReaders{st: st, vol: vol, open: make(map[uint64]objstore.Reader)}
}

// readAt reads len(p) bytes at off of segment seq.
func (s *segmentReaders) readAt(seq uint64, p []byte, off int64) error {
	s.mu.RLock()
	r, ok := s.open[seq]
	if ok {
		defer s.mu.RUnlock()
		return s.read(r, seq, p, off)
	}
	s.mu.RUnlock()

	s.mu.Lock()
	if r, ok = s.open[seq]; !ok {
		var err error
		if r, err = s.st.Open(segName(s.vol, seq)); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("lfs: open segment %d of %s: %w", seq, s.vol, err)
		}
		if len(s.open) >= maxOpenSegments {
			for k, old := range s.open { // evict one at random
				_ = old.Close()
				delete(s.open, k)
				break
			}
		}
		s.open[seq] = r
	}
	s.mu.Unlock()
	return s.readAt(seq, p, off)
}

func (s *segmentReaders) read(r objstore.Reader, seq uint64, p []byte, off int64) error {
	if off+int64(len(p)) > r.Size() {
		return corruptf(segName(s.vol, seq), off, "record of %d bytes runs past the segment's end (%d bytes)", len(p), r.Size())
	}
	if _, err := r.ReadAt(p, off); err != nil {
		return fmt.Errorf("lfs: read segment %d of %s at %d: %w", seq, s.vol, off, err)
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
