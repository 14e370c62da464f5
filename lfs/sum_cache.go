package lfs

import (
	"sync"

	"github.com/hlfs/hlfs/internal/blockmap"
)

// sumCache holds the block checksum tables of multi-block records read
// recently, so that a read of part of such a record needs one store read
// (its blocks) instead of two (its blocks, then its checksums 64 KiB away).
// Records never change once written, so entries never go stale; the cache
// is bounded by evicting about half of it when full. Safe for concurrent
// use; no I/O happens under its lock.
type sumCache struct {
	mu struct {
		sync.RWMutex
		m     map[sumKey][]byte
		bytes int
	}
}

// sumKey names a record: its segment and where its payload starts.
type sumKey struct {
	branch      uint16
	seq, payOff uint32
}

// sumCacheBytes bounds the checksum bytes cached per volume: 8 MiB covers
// the reads of 8 GiB of data.
const sumCacheBytes = 8 << 20

func keyOfRecord(e blockmap.Extent) sumKey { return sumKey{e.Branch, e.Seq, e.PayOff} }

// get returns the checksums of record k, or nil.
func (c *sumCache) get(k sumKey) []byte {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.mu.m[k]
}

// put remembers the checksums of record k; sums must not change after.
func (c *sumCache) put(k sumKey, sums []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.m == nil {
		c.mu.m = make(map[sumKey][]byte)
	}
	if _, ok := c.mu.m[k]; ok {
		return
	}
	if c.mu.bytes+len(sums) > sumCacheBytes {
		for old, s := range c.mu.m { // map order is random: a random half goes
			if c.mu.bytes <= sumCacheBytes/2 {
				break
			}
			delete(c.mu.m, old)
			c.mu.bytes -= len(s)
		}
	}
	c.mu.m[k] = sums
	c.mu.bytes += len(sums)
}

// drop forgets record k's checksums: a read failed against them, and they
// may be what was damaged (in the store, or on the way).
func (c *sumCache) drop(k sumKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.mu.m[k]; ok {
		delete(c.mu.m, k)
		c.mu.bytes -= len(s)
	}
}
