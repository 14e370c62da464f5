package lfs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// modelVolume is one volume of the snapshot model test: its live content,
// its snapshots' content, and the clones made from them.
type modelVolume struct {
	name   string
	v      *Volume
	live   []byte
	snaps  map[string][]byte
	source string // "vol@snap" for a clone
}

type snapshotModel struct {
	t    *testing.T
	st   objstore.Store
	rng  *rand.Rand
	vols map[string]*modelVolume
	n    int
	done map[string]int // operations that succeeded, to show coverage
}

func (sm *snapshotModel) names() []string {
	var out []string
	for n := range sm.vols {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (sm *snapshotModel) pick() *modelVolume { n := sm.names(); return sm.vols[n[sm.rng.Intn(len(n))]] }

func (mv *modelVolume) snapNames() []string {
	var out []string
	for n := range mv.snaps {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// dependents lists the clones whose source is vol@snap (snap "" = any).
func (sm *snapshotModel) dependents(vol, snap string) []string {
	var out []string
	for _, mv := range sm.vols {
		if mv.source == vol+"@"+snap || (snap == "" && len(mv.source) > len(vol) && mv.source[:len(vol)+1] == vol+"@") {
			out = append(out, mv.name)
		}
	}
	return out
}

func (sm *snapshotModel) reopen(mv *modelVolume) {
	var err error
	mv.v, err = Open(sm.st, mv.name, Options{CheckpointInterval: 1 << 20})
	require.NoError(sm.t, err)
}

func (sm *snapshotModel) verify(mv *modelVolume) {
	t := sm.t
	got := make([]byte, len(mv.live))
	require.NoError(t, mv.v.ReadAt(got, 0))
	require.True(t, bytes.Equal(got, mv.live), "%s differs from its model", mv.name)
	require.NoError(t, mv.v.Check())
	require.NoError(t, mv.v.Check())
	infos, err := mv.v.Snapshots()
	require.NoError(t, err)
	require.Len(t, infos, len(mv.snaps), "%s snapshots", mv.name)
	for _, info := range infos {
		want, ok := mv.snaps[info.Name]
		require.True(t, ok, "unexpected snapshot %s@%s", mv.name, info.Name)
		view, err := mv.v.SnapshotView(info.Name)
		require.NoError(t, err)
		require.NoError(t, view.ReadAt(got, 0))
		require.True(t, bytes.Equal(got, want), "%s@%s differs from its model", mv.name, info.Name)
		require.ErrorIs(t, view.WriteAt([]byte{1}, 0, false), ErrReadOnly)
	}
}

func (sm *snapshotModel) step() {
	t, rng := sm.t, sm.rng
	mv := sm.pick()
	switch r := rng.Intn(100); {
	case r < 55:
		op := randomOp(rng, int64(len(mv.live)))
		require.NoError(t, op.applyVolume(mv.v))
		op.applyModel(mv.live)
	case r < 65:
		sm.n++
		name := fmt.Sprintf("s%d", sm.n)
		require.NoError(t, mv.v.CreateSnapshot(name))
		mv.snaps[name] = append([]byte(nil), mv.live...)
		sm.done["snapshot"]++
		require.ErrorIs(t, mv.v.CreateSnapshot(name), ErrSnapshotExists)
	case r < 72 && len(mv.snaps) > 0:
		names := mv.snapNames()
		name := names[rng.Intn(len(names))]
		err := mv.v.DeleteSnapshot(name)
		if deps := sm.dependents(mv.name, name); len(deps) > 0 {
			require.ErrorIs(t, err, ErrHasClones)
			return
		}
		require.NoError(t, err)
		delete(mv.snaps, name)
		sm.done["snapshot rm"]++
	case r < 78 && len(mv.snaps) > 0:
		names := mv.snapNames()
		name := names[rng.Intn(len(names))]
		require.NoError(t, mv.v.Close())
		require.NoError(t, Rollback(sm.st, mv.name, name))
		mv.live = append([]byte(nil), mv.snaps[name]...)
		sm.done["rollback"]++
		sm.reopen(mv)
	case r < 84 && len(mv.snaps) > 0 && len(sm.vols) < 6:
		names := mv.snapNames()
		name := names[rng.Intn(len(names))]
		sm.n++
		clone := &modelVolume{name: fmt.Sprintf("c%d", sm.n), snaps: map[string][]byte{},
			live: append([]byte(nil), mv.snaps[name]...), source: mv.name + "@" + name}
		require.NoError(t, Clone(sm.st, mv.name, name, clone.name))
		sm.vols[clone.name] = clone
		sm.done["clone"]++
		if mv.source != "" {
			sm.done["clone of clone"]++
		}
		sm.reopen(clone)
	case r < 88 && mv.source != "":
		require.NoError(t, mv.v.Close())
		err := Flatten(sm.st, mv.name, nil)
		switch {
		case len(sm.dependents(mv.name, "")) > 0:
			require.ErrorIs(t, err, ErrHasClones)
		case err != nil:
			require.ErrorIs(t, err, ErrHasSnapshots) // its snapshots share source data
		default:
			mv.source = ""
			sm.done["flatten"]++
		}
		sm.reopen(mv)
	case r < 90:
		// Clean: copies data the live map and snapshots share, rewrites
		// snapshot maps, leaves what clones may name.
		stats, err := mv.v.GC(GCOptions{MaxUtilization: []float64{0.5, 0.99}[rng.Intn(2)]})
		require.NoError(t, err)
		sm.done["gc"]++
		sm.done["gc segments copied"] += stats.SegmentsCleaned
		sm.done["gc segments deleted"] += stats.SegmentsDeleted
		sm.verify(mv)
	case r < 93:
		require.NoError(t, mv.v.Close())
		sm.reopen(mv)
	default:
		sm.verify(mv)
	}
}

// TestSnapshotModel runs random interleavings of writes, snapshots,
// snapshot deletes, rollbacks, clones (of clones), flattens and restarts;
// every volume and snapshot is compared with its model copy, and fsck runs
// on every volume at the end.
func TestSnapshotModel(t *testing.T) {
	done := map[string]int{}
	defer func() {
		t.Logf("operations: %v", done)
		for _, op := range []string{"snapshot", "snapshot rm", "rollback", "clone", "clone of clone", "flatten", "gc", "gc segments copied", "gc segments deleted"} {
			require.Greater(t, done[op], 0, "the model test never did a %s", op)
		}
	}()
	for seed := int64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			st := objstore.NewMemStore(seed%2 == 0, seed)
			sm := &snapshotModel{t: t, st: st, rng: rand.New(rand.NewSource(seed)), vols: map[string]*modelVolume{}, done: done}
			const size = 1 << 20
			require.NoError(t, Create(st, "base", Config{Size: size, BlockSize: 512, SegmentSize: 1 << 20}))
			base := &modelVolume{name: "base", live: make([]byte, size), snaps: map[string][]byte{}}
			sm.vols["base"] = base
			sm.reopen(base)
			for i := 0; i < 500; i++ {
				sm.step()
			}
			for _, n := range sm.names() {
				mv := sm.vols[n]
				sm.verify(mv)
				require.NoError(t, mv.v.Close())
				sm.reopen(mv) // recovery from the final checkpoint
				sm.verify(mv)
				require.NoError(t, mv.v.Close())
				rep, err := Fsck(st, n, nil)
				require.NoError(t, err)
				require.True(t, rep.OK(), "fsck %s: %v", n, rep.Problems)
			}
			// Removing a volume that clones read from is refused; removing
			// leaves first empties the store.
			for len(sm.vols) > 0 {
				for _, n := range sm.names() {
					err := Remove(st, n)
					if deps := sm.dependents(n, ""); len(deps) > 0 {
						require.True(t, errors.Is(err, ErrHasClones), "rm %s: %v", n, err)
						continue
					}
					require.NoError(t, err, "rm %s", n)
					delete(sm.vols, n)
				}
			}
			left, err := st.List("")
			require.NoError(t, err)
			require.Empty(t, left, "rm leaves nothing behind")
		})
	}
}
