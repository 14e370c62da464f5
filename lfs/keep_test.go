package lfs

import (
	"bytes"
	"math/rand"
	"slices"
	"sync"
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// TestWriteAtKeepHoldsPayloadsUntilTheStoreHasThem: payloads handed over
// with WriteAtKeep are released at most once each, and only once the store
// has the segments holding them: each release scribbles over its buffer, and
// the volume still reads what was written, from memory, from the store,
// after a crash (what was flushed) and after a reopen. A buffer much larger
// than its payload is copied and released at once.
func TestWriteAtKeepHoldsPayloadsUntilTheStoreHasThem(t *testing.T) {
	simulateOwnDeath(t)
	st := objstore.NewMemStore(false, 0)
	const size = 4 << 20
	require.NoError(t, Create(st, "k", Config{Size: size, SegmentSize: 1 << 20}))
	opts := Options{CheckpointInterval: -1, Logger: testLogger(t)}
	v := openChecked(t, st.Session(), "k", opts)
	rng := rand.New(rand.NewSource(11))
	model := make([]byte, size)
	var mu sync.Mutex
	var releases []int // per payload; the pusher releases them
	counts := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(releases)
	}
	write := func(off, n int) []byte {
		p := make([]byte, n)
		rng.Read(p)
		mu.Lock()
		i := len(releases)
		releases = append(releases, 0)
		mu.Unlock()
		require.NoError(t, v.WriteAtKeep(p, int64(off), false, func() {
			mu.Lock()
			releases[i]++
			mu.Unlock()
			for j := range p {
				p[j] = 0xEE
			}
		}))
		copy(model[off:], p)
		return p
	}
	readBack := func(what string) {
		t.Helper()
		got := make([]byte, size)
		require.NoError(t, v.ReadAt(got, 0))
		require.True(t, bytes.Equal(model, got), what)
	}

	for i := 0; i < 4; i++ {
		write(i*(64<<10), 64<<10)
	}
	require.Equal(t, []int{0, 0, 0, 0}, counts(), "the active segment holds them")
	readBack("from memory")

	// A small payload in a large buffer is copied.
	big := make([]byte, 32<<10, 256<<10)
	rng.Read(big)
	released := false
	require.NoError(t, v.WriteAtKeep(big, 1<<20, false, func() { released = true }))
	require.True(t, released)
	copy(model[1<<20:], big)

	for off := 0; off < 3<<20; off += 96 << 10 {
		write(off, 96<<10)
	}
	require.NoError(t, v.Flush())
	require.Equal(t, []int{1, 1, 1, 1}, counts()[:4], "the store has the first segment")
	flushed := bytes.Clone(model)
	readBack("from memory and the store")
	write(2<<20, 64<<10) // not flushed
	st.Crash()
	_ = v.Close()
	for i, n := range counts() {
		require.LessOrEqual(t, n, 1, "payload %d released twice", i)
	}

	v = openChecked(t, st.Session(), "k", opts)
	model = flushed
	readBack("after a crash")
	for off := 0; off < size; off += 128 << 10 {
		write(off, 128<<10)
	}
	require.NoError(t, v.Close())
	for i, n := range counts() {
		require.LessOrEqual(t, n, 1, "payload %d released twice", i)
	}
	v = openChecked(t, st.Session(), "k", opts)
	defer v.Close()
	readBack("after a reopen")
}
