package lfs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/objstore"
)

// FuzzDecodeCheckpoint feeds damaged checkpoints (both format versions,
// with snapshots and books) to the decoder: it never panics, and what it
// accepts keeps the map invariants and re-encodes to the same map.
func FuzzDecodeCheckpoint(f *testing.F) {
	const uid = 42
	for _, name := range []string{"0000000000000002-000000000000008c", "0000000000000003-00000000000263e1"} {
		if b, err := os.ReadFile(filepath.Join("testdata", "v1store", "v1", "ckpt", name)); err == nil {
			f.Add(b)
		}
	}
	st := objstore.NewMemStore(false, 1)
	m := blockmap.New()
	m.Set(blockmap.Extent{Off: 4096, Length: 8192, Seq: 3, PayOff: 32 + 64, PayLen: 8192, Branch: 1})
	m.Set(blockmap.Extent{Off: 65536, Length: 100, Seq: 7, PayOff: 4096, PayLen: 90, Skip: 12, Flags: 1 | blockmap.FlagCopy})
	t := newSnapTable()
	t.list = append(t.list, &snapshot{id: 1, name: "s1", pos: logPos{2, 64}, gen: 3}, &snapshot{id: 2, parent: 1, name: "s2", pos: logPos{5, 10}})
	t.next, t.head, t.rollback = 3, 2, logPos{4, 99}
	if err := writeCheckpoint(st, "c", uid, checkpoint{pos: logPos{9, 128}, size: 1 << 20, m: m, snaps: t,
		live: map[uint64]int64{3: 8192, 7: 100}, exact: true}); err != nil {
		f.Fatal(err)
	}
	b, err := readObject(st, "c")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCheckpoint("c", uid, b)
		if err != nil {
			return
		}
		if probs := c.m.Problems(c.size); len(probs) > 0 {
			t.Fatalf("accepted a checkpoint that breaks the map invariants: %v", probs)
		}
		st := objstore.NewMemStore(false, 1)
		if err := writeCheckpoint(st, "again", uid, c); err != nil {
			t.Fatal(err)
		}
		again, err := readObject(st, "again")
		if err != nil {
			t.Fatal(err)
		}
		c2, err := decodeCheckpoint("again", uid, again)
		if err != nil {
			t.Fatalf("a re-encoded checkpoint does not decode: %v", err)
		}
		var e1, e2 bytes.Buffer
		c.m.Ascend(func(e blockmap.Extent) bool { e1.WriteString(e.String()); return true })
		c2.m.Ascend(func(e blockmap.Extent) bool { e2.WriteString(e.String()); return true })
		if e1.String() != e2.String() || len(c.snaps.list) != len(c2.snaps.list) || c.exact != c2.exact {
			t.Fatal("a re-encoded checkpoint decodes differently")
		}
	})
}
