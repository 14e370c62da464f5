package lfs

import (
	"bytes"
	"testing"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// TestCheckFindsBrokenState breaks each part of the state Check covers and
// expects Check to name it.
func TestCheckFindsBrokenState(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(c *stateCut)
		want   string
	}{
		{"overlapping live extents", func(c *stateCut) {
			c.live.InsertDisjoint(blockmap.Extent{Off: 100, Length: 8192, Seq: 1, PayOff: 96, PayLen: 8192})
		}, "live map"},
		{"books off by a byte", func(c *stateCut) {
			for seq := range c.books {
				c.books[seq]++
				break
			}
		}, "space books"},
		{"a snapshot without runtime state", func(c *stateCut) {
			for id := range c.snaps.run {
				delete(c.snaps.run, id)
			}
		}, "no runtime state"},
		{"a snapshot map beyond the volume", func(c *stateCut) {
			for _, r := range c.snaps.run {
				r.m = blockmap.New()
				r.m.InsertDisjoint(blockmap.Extent{Off: 1 << 20, Length: 4096, Seq: 1, PayOff: 96, PayLen: 4096})
			}
		}, "snapshot s1's map"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := objstore.NewMemStore(false, 1)
			require.NoError(t, Create(st, "c", Config{Size: 1 << 20, SegmentSize: 1 << 20}))
			v, err := Open(st, "c", Options{})
			require.NoError(t, err)
			require.NoError(t, v.WriteAt(bytes.Repeat([]byte{7}, 8192), 0, false))
			require.NoError(t, v.CreateSnapshot("s1"))
			require.NoError(t, v.Check())
			c := v.cut()
			tc.break_(&c)
			err = v.checkCut(c)
			require.ErrorIs(t, err, ErrCorrupt)
			require.ErrorContains(t, err, tc.want)
			v.Abandon()
		})
	}
}
