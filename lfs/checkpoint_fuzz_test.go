package lfs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
	"github.com/hlfs/hlfs/snapshot"
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
	t := snapshot.New()
	for _, step := range []struct {
		op  snapshot.Op
		pos segment.Pos
	}{
		{snapshot.Op{Kind: snapshot.Create, ID: 1, Name: "s1"}, segment.Pos{Seq: 2, Off: 64}},
		{snapshot.Op{Kind: snapshot.Create, ID: 2, Parent: 1, Name: "s2"}, segment.Pos{Seq: 5, Off: 10}},
		{snapshot.Op{Kind: snapshot.Rollback, ID: 2}, segment.Pos{Seq: 5, Off: 99}},
	} {
		if err := t.Apply(step.op, step.pos); err != nil {
			f.Fatal(err)
		}
	}
	if err := t.SetGen(1, 3); err != nil {
		f.Fatal(err)
	}
	if err := writeCheckpoint(st, "c", uid, checkpoint{pos: segment.Pos{Seq: 9, Off: 128}, size: 1 << 20, m: m, snaps: t,
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
		if e1.String() != e2.String() || !bytes.Equal(c.snaps.Encode(), c2.snaps.Encode()) || c.exact != c2.exact {
			t.Fatal("a re-encoded checkpoint decodes differently")
		}
	})
}
