package nbdserver

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

const holeFlags = stateHole | stateZero

// holeyExport returns a 1 MiB export with data at [4K, 12K), [12K+512, 16K)
// and [1M-512, 1M); everything else is a hole.
func holeyExport() *memExport {
	e := newMemExport(1 << 20)
	e.WriteAt(make([]byte, 8192), 4096, false)
	e.WriteAt(make([]byte, 4096-512), 12288+512, false)
	e.WriteAt(make([]byte, 512), 1<<20-512, false)
	return e
}

// decodeExtents turns appendExtents output back into descriptors.
func decodeExtents(b []byte) []extent {
	var out []extent
	for ; len(b) >= 8; b = b[8:] {
		out = append(out, extent{binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])})
	}
	return out
}

func TestAppendExtents(t *testing.T) {
	tests := []struct {
		name        string
		maxRun      int64
		off, length int64
		limit       int
		want        []extent
	}{
		{"whole", 0, 0, 1 << 20, maxExtents, []extent{
			{4096, holeFlags}, {8192, 0}, {512, holeFlags}, {3584, 0}, {1<<20 - 16384 - 512, holeFlags}, {512, 0}}},
		{"unaligned inside data", 0, 5000, 100, maxExtents, []extent{{100, 0}}},
		{"straddling", 0, 4000, 200, maxExtents, []extent{{96, holeFlags}, {104, 0}}},
		{"limit", 0, 0, 1 << 20, 2, []extent{{4096, holeFlags}, {8192, 0}}},
		{"req one", 0, 0, 1 << 20, 1, []extent{{4096, holeFlags}}},
		// The export stops after 1000 bytes each call: runs are asked for
		// again and merged.
		{"export stops early", 1000, 0, 20000, maxExtents, []extent{
			{4096, holeFlags}, {8192, 0}, {512, holeFlags}, {3584, 0}, {20000 - 16384, holeFlags}}},
		{"export stops early, limited", 1000, 0, 20000, 3, []extent{
			{4096, holeFlags}, {8192, 0}, {512, holeFlags}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := holeyExport()
			e.maxRun = tt.maxRun
			got, err := appendExtents([]byte{0xaa}, e, tt.off, tt.length, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if got[0] != 0xaa {
				t.Fatalf("prefix clobbered")
			}
			if ext := decodeExtents(got[1:]); !slices.Equal(ext, tt.want) {
				t.Fatalf("extents\n%v\nwant\n%v", ext, tt.want)
			}
		})
	}
}

// scriptedExport reports fixed runs from Allocation, ignoring the range.
type scriptedExport struct {
	memExport
	runs []int64
	err  error
}

func (s *scriptedExport) Allocation(off, length int64, fn func(int64, bool) error) error {
	for _, n := range s.runs {
		if err := fn(n, false); err != nil {
			return err
		}
	}
	return s.err
}

func TestAppendExtentsRejectsBadExports(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		exp  *scriptedExport
		want error
	}{
		{"empty run", &scriptedExport{runs: []int64{0}}, errBadExtent},
		{"negative run", &scriptedExport{runs: []int64{-5}}, errBadExtent},
		{"overrun", &scriptedExport{runs: []int64{4097}}, errBadExtent},
		{"no progress", &scriptedExport{}, errBadExtent},
		{"export error", &scriptedExport{runs: []int64{512}, err: boom}, boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := appendExtents(nil, tt.exp, 0, 4096, maxExtents)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if len(got) != 0 {
				t.Fatalf("partial descriptors returned with an error")
			}
		})
	}
}

func TestBlockStatusOverWire(t *testing.T) {
	cat := newCatalog()
	e := holeyExport()
	cat.add("v", e, ExportInfo{})
	ts := startServer(t, cat, Options{})
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle | clientFlagNoZeroes)
	c.enableStructured()
	ids := c.setMeta("v", metaBaseAlloc)
	c.goExport("v")

	rep := mustOK(t, c.cmd(cmdBlockStatus, 0, 0, 1<<20))
	if rep.ctxID != ids[metaBaseAlloc] || rep.chunks != 1 {
		t.Fatalf("context %d (want %d), %d chunks", rep.ctxID, ids[metaBaseAlloc], rep.chunks)
	}
	want := []extent{{4096, holeFlags}, {8192, 0}, {512, holeFlags}, {3584, 0}, {1<<20 - 16384 - 512, holeFlags}, {512, 0}}
	if !slices.Equal(rep.extents, want) {
		t.Fatalf("extents %v", rep.extents)
	}
	rep = mustOK(t, c.cmd(cmdBlockStatus, cmdFlagReqOne, 0, 1000))
	if !slices.Equal(rep.extents, []extent{{1000, holeFlags}}) {
		t.Fatalf("REQ_ONE extents %v", rep.extents)
	}
	// Trim and write change what is reported.
	mustOK(t, c.cmd(cmdTrim, 0, 4096, 8192))
	mustOK(t, c.writeAt(0, []byte{1}, 0))
	rep = mustOK(t, c.cmd(cmdBlockStatus, 0, 0, 16384))
	if !slices.Equal(rep.extents, []extent{{512, 0}, {12288, holeFlags}, {3584, 0}}) {
		t.Fatalf("after trim: extents %v", rep.extents)
	}
	mustErr(t, c.cmd(cmdBlockStatus, 0, 1<<20, 1), errnoINVAL)
	mustErr(t, c.cmd(cmdBlockStatus, cmdFlagDF, 0, 1), errnoINVAL)

	e.fail = func(op string, off, n int64) error {
		if op == "allocation" {
			return errors.New("map unreadable")
		}
		return nil
	}
	mustErr(t, c.cmd(cmdBlockStatus, 0, 0, 4096), errnoIO)
}
