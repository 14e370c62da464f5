package lfs

import (
	"bytes"
	"math/rand"
	"slices"
	"sync"
	"sync/atomic"
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
		copy(model[off:], p)
		require.NoError(t, v.WriteAtKeep(p, int64(off), false, func() {
			mu.Lock()
			releases[i]++
			mu.Unlock()
			for j := range p {
				p[j] = 0xEE
			}
		}))
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

// TestWriteAtKeepThroughAStoreOutage: a store that fails every write,
// sync and close while kept payloads wait in memory makes the log writer
// abandon objects and write the segments again from memory; no payload is
// released before the store has it, each at most once, and everything
// reads back after the store returns and after a reopen.
func TestWriteAtKeepThroughAStoreOutage(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	const size = 4 << 20
	require.NoError(t, Create(st, "o", Config{Size: size, SegmentSize: 1 << 20}))
	v := openChecked(t, st, "o", Options{CheckpointInterval: -1, StoreRetry: -1})
	var down atomic.Bool
	st.SetInjector(func(op objstore.Op, name string) error {
		if down.Load() && (op == objstore.OpWrite || op == objstore.OpSync || op == objstore.OpClose) {
			return objstore.ErrInjected
		}
		return nil
	})
	model := make([]byte, size)
	var released [40]atomic.Int32
	rng := rand.New(rand.NewSource(2))
	write := func(i int) {
		p := make([]byte, 64<<10)
		rng.Read(p)
		off := (i % 64) * (64 << 10)
		copy(model[off:], p)
		require.NoError(t, v.WriteAtKeep(p, int64(off), false, func() {
			released[i].Add(1)
			for j := range p {
				p[j] = 0xEE
			}
		}))
	}
	down.Store(true)
	for i := 0; i < 20; i++ { // more than one segment
		write(i)
	}
	require.ErrorIs(t, v.Flush(), objstore.ErrInjected)
	for i := range 20 {
		require.Zero(t, released[i].Load(), "payload %d released while the store failed", i)
	}
	got := make([]byte, size)
	require.NoError(t, v.ReadAt(got, 0))
	require.True(t, bytes.Equal(model, got), "reads are served from memory during the outage")
	down.Store(false)
	for i := 20; i < 40; i++ {
		write(i)
	}
	require.NoError(t, v.Flush())
	require.NoError(t, v.ReadAt(got, 0))
	require.True(t, bytes.Equal(model, got))
	require.NoError(t, v.Close())
	for i := range released {
		require.LessOrEqual(t, released[i].Load(), int32(1), "payload %d released twice", i)
	}
	require.Equal(t, int32(1), released[0].Load(), "the store has the first segment")
	v = openChecked(t, st, "o", Options{})
	defer v.Close()
	require.NoError(t, v.ReadAt(got, 0))
	require.True(t, bytes.Equal(model, got), "nothing lost after reopen")
}

// TestWriteAtKeepCopiesWhatItCannotCount: a buffer whose kept payloads
// would be much less than the buffer (mostly zero blocks: holes; or a
// compressed volume, whose payloads are new buffers) is copied, and
// released before WriteAtKeep returns.
func TestWriteAtKeepCopiesWhatItCannotCount(t *testing.T) {
	for _, compress := range []bool{false, true} {
		st := objstore.NewMemStore(false, 0)
		require.NoError(t, Create(st, "c", Config{Size: 4 << 20, SegmentSize: 1 << 20, Compress: compress}))
		v := openChecked(t, st, "c", Options{CheckpointInterval: -1})
		p := make([]byte, 1<<20)
		if compress {
			rand.New(rand.NewSource(4)).Read(p[:len(p)/2]) // half compresses
		} else {
			rand.New(rand.NewSource(4)).Read(p[:64<<10]) // the rest are holes
		}
		want := bytes.Clone(p)
		released := false
		require.NoError(t, v.WriteAtKeep(p, 0, false, func() {
			released = true
			clear(p)
		}))
		require.True(t, released, "compress=%v", compress)
		got := make([]byte, len(p))
		require.NoError(t, v.ReadAt(got, 0))
		require.True(t, bytes.Equal(want, got), "compress=%v", compress)
		require.NoError(t, v.Close())
	}
}
