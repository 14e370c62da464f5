package nbdserver

import (
	"math/bits"
	"sync"
)

// Payload buffers come from power-of-two size classes so that steady traffic
// (4 KiB to a few MiB per request) allocates nothing. Pools hold *[]byte so
// that Put does not allocate.
const (
	minBufShift = 12 // 4 KiB
	maxBufShift = 30 // MaxMaxPayload
)

var bufPools [maxBufShift - minBufShift + 1]sync.Pool

// bufClass returns the size class index for n bytes.
func bufClass(n int) int {
	if n <= 1<<minBufShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minBufShift
}

// getBuf returns a buffer of length n (contents undefined). Release it with
// putBuf once nothing refers to it.
func getBuf(n int) *[]byte {
	c := bufClass(n)
	if c >= len(bufPools) {
		b := make([]byte, n)
		return &b
	}
	if p, ok := bufPools[c].Get().(*[]byte); ok {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n, 1<<(c+minBufShift))
	return &b
}

// putBuf returns a buffer from getBuf to its pool.
func putBuf(p *[]byte) {
	c := cap(*p)
	if c < 1<<minBufShift || c&(c-1) != 0 {
		return // not from a pool class
	}
	i := bufClass(c)
	if i >= len(bufPools) {
		return
	}
	*p = (*p)[:0]
	bufPools[i].Put(p)
}
