package lfs

import (
	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/objstore"
)

// extentMemBytes is what one extent of a map costs in memory: 32 bytes
// in B-tree nodes of degree 32 that are about two thirds full
// (internal/blockmap BenchmarkExtentMapMemory measures 47.9).
const extentMemBytes = 48

// MapStats is the size of a block map: its extents and the memory they
// take (an estimate: extentMemBytes each).
type MapStats struct {
	Extents int   `json:"extents"`
	Bytes   int64 `json:"map_bytes"`
}

func mapStatsOf(m *blockmap.Map) MapStats {
	return MapStats{Extents: m.Len(), Bytes: int64(m.Len()) * extentMemBytes}
}

// MapStats is the size of the live map now.
func (v *Volume) MapStats() MapStats {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return mapStatsOf(v.mu.m)
}

// LiveMapStats opens vol read-only (so it works while the volume is
// served; it replays the log after the newest checkpoint) and returns the
// size of its live map as the store holds it.
func LiveMapStats(st objstore.Store, vol string) (MapStats, error) {
	v, err := Open(st, vol, Options{ReadOnly: true})
	if err != nil {
		return MapStats{}, err
	}
	defer v.Close()
	return v.MapStats(), nil
}
