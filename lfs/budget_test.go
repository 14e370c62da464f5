package lfs

import (
	"bytes"
	"fmt"
	"math/rand"
	"runtime"
	"sync"
	"testing"

	"github.com/hlfs/hlfs/internal/membudget"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// TestBudgetBoundsManyVolumes writes 8 volumes at once, 32 MiB segments
// each, under a 2 MiB budget: the log data in memory never exceeds it (the
// budget's high-water mark), segments are sealed early to stay within it,
// every byte reads back, before and after a reopen, and closing gives all
// the memory back.
func TestBudgetBoundsManyVolumes(t *testing.T) {
	const (
		vols   = 8
		size   = 4 << 20
		limit  = 2 << 20
		writes = 32
	)
	st, err := objstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	budget := membudget.New(limit)
	opts := Options{CheckpointInterval: -1, Budget: budget}
	models := make([][]byte, vols)
	var wg sync.WaitGroup
	errs := make(chan error, vols)
	for i := range vols {
		name := fmt.Sprintf("v%d", i)
		require.NoError(t, Create(st, name, Config{Size: size}))
		v := openChecked(t, st, name, opts)
		models[i] = make([]byte, size)
		wg.Add(1)
		go func(v *Volume, model []byte, seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			for w := range writes {
				p := make([]byte, (1+rng.Intn(32))<<12) // up to 128 KiB
				rng.Read(p)
				off := rng.Int63n(size-int64(len(p))) &^ 4095
				if err := v.WriteAt(p, off, false); err != nil {
					errs <- err
					return
				}
				copy(model[off:], p)
				if w%16 == 15 {
					if err := v.Flush(); err != nil {
						errs <- err
						return
					}
				}
			}
			got := make([]byte, size)
			if err := v.ReadAt(got, 0); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, model) {
				errs <- fmt.Errorf("volume %d reads back differently", seed)
				return
			}
			errs <- v.Close()
		}(v, models[i], int64(i))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("budget %d KiB, high-water mark %d KiB", limit>>10, budget.Peak()>>10)
	require.LessOrEqual(t, budget.Peak(), int64(limit), "log data in memory beyond the budget")
	require.Greater(t, budget.Peak(), int64(limit/2), "the workload should fill the budget")
	require.Zero(t, budget.Used(), "memory still held after every volume closed")
	seqs, err := listSegments(st, "v0")
	require.NoError(t, err)
	require.Greater(t, len(seqs), 1, "32 MiB segments holding ~2 MiB each: sealed early")
	for i := range vols {
		v := openChecked(t, st, fmt.Sprintf("v%d", i), opts)
		got := make([]byte, size)
		require.NoError(t, v.ReadAt(got, 0))
		require.True(t, bytes.Equal(got, models[i]), "volume %d after reopen", i)
		require.NoError(t, v.Close())
	}
}

// TestIdleVolumeOverhead measures the heap and goroutines an open, idle,
// written volume costs (issue 11: a few KiB plus its map), after its
// segments were written out under a budget.
func TestIdleVolumeOverhead(t *testing.T) {
	const vols = 50
	st := objstore.NewMemStore(false, 1)
	budget := membudget.New(1) // every write sealed and written out at once
	for i := range vols {
		require.NoError(t, Create(st, fmt.Sprintf("i%d", i), Config{Size: 1 << 30}))
	}
	measure := func() (uint64, int) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc, runtime.NumGoroutine()
	}
	heap0, g0 := measure()
	open := make([]*Volume, vols)
	for i := range open {
		v, err := Open(st, fmt.Sprintf("i%d", i), Options{CheckpointInterval: -1, Budget: budget})
		require.NoError(t, err)
		open[i] = v
	}
	heap1, g1 := measure()
	perVol := (int64(heap1) - int64(heap0)) / vols
	t.Logf("open volume never written: %d bytes of heap, %d goroutines", perVol, (g1-g0)/vols)
	require.Less(t, perVol, int64(16<<10), "an idle volume should cost a few KiB")
	require.LessOrEqual(t, (g1-g0)/vols, 4, "goroutines per open volume")
	for _, v := range open {
		require.NoError(t, v.WriteAt(bytes.Repeat([]byte{1}, 4096), 0, true))
		require.NoError(t, v.WriteAt(bytes.Repeat([]byte{2}, 4096), 1<<20, true))
	}
	heap2, _ := measure()
	perVol = (int64(heap2) - int64(heap0)) / vols
	// The last write's segment stays in memory (16 KiB chunk) until the
	// budget reclaims it.
	t.Logf("idle volume after two writes: %d bytes of heap", perVol)
	require.Less(t, perVol, int64(48<<10), "an idle volume should cost a few KiB")
	for _, v := range open {
		require.NoError(t, v.Close())
	}
	require.Zero(t, budget.Used())
}
