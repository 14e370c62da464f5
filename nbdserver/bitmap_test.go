package nbdserver

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

var _ BitmapExport = (*bitmapExport)(nil)

// bitmapExport is a memExport with dirty bitmaps: one flag per 512-byte
// sector per bitmap.
type bitmapExport struct {
	*memExport
	names []string
	dirty map[string][]bool
	// maxRun, if positive, makes Dirty stop after that many bytes.
	maxRun int64
	// fail, if set, is returned by Dirty.
	fail error
}

// newBitmapExport returns a 1 MiB export whose bitmap "b1" marks
// [4096, 12288) and [1 MiB - 512, 1 MiB), and "b2" marks [0, 512); data at
// [8192, 16384).
func newBitmapExport() *bitmapExport {
	e := &bitmapExport{memExport: newMemExport(1 << 20), names: []string{"b1", "b2"}, dirty: map[string][]bool{}}
	e.WriteAt(make([]byte, 8192), 8192, false)
	for _, n := range e.names {
		e.dirty[n] = make([]bool, (1<<20)/memSector)
	}
	mark := func(n string, off, length int64) {
		for i := off / memSector; i < (off+length)/memSector; i++ {
			e.dirty[n][i] = true
		}
	}
	mark("b1", 4096, 8192)
	mark("b1", 1<<20-512, 512)
	mark("b2", 0, 512)
	return e
}

func (e *bitmapExport) DirtyBitmaps() []string { return e.names }

func (e *bitmapExport) Dirty(name string, off, length int64, fn func(int64, bool) error) error {
	if e.fail != nil {
		return e.fail
	}
	bits, ok := e.dirty[name]
	if !ok {
		return fmt.Errorf("no bitmap %q", name)
	}
	reported := int64(0)
	for pos, end := off, off+length; pos < end; {
		d := bits[pos/memSector]
		next := min((pos/memSector+1)*memSector, end)
		for next < end && bits[next/memSector] == d {
			next = min(next+memSector, end)
		}
		if e.maxRun > 0 && reported >= e.maxRun {
			return nil
		}
		if err := fn(next-pos, d); err != nil {
			return err
		}
		reported += next - pos
		pos = next
	}
	return nil
}

func bitmapCatalog() (*memCatalog, *bitmapExport) {
	cat := newCatalog()
	e := newBitmapExport()
	cat.add("v", e, ExportInfo{})
	cat.add("plain", newMemExport(1<<20), ExportInfo{})
	return cat, e
}

func TestBitmapMetaContextNegotiation(t *testing.T) {
	cat, _ := bitmapCatalog()
	ts := startServer(t, cat, Options{})
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle)
	c.enableStructured()
	b1, b2 := "qemu:dirty-bitmap:b1", "qemu:dirty-bitmap:b2"
	for _, tt := range []struct {
		opt     uint32
		export  string
		queries []string
		want    []string
	}{
		{optListMetaContext, "v", nil, []string{metaBaseAlloc, b1, b2}},
		{optListMetaContext, "v", []string{"qemu:"}, []string{b1, b2}},
		{optListMetaContext, "v", []string{"qemu:dirty-bitmap:"}, []string{b1, b2}},
		{optListMetaContext, "v", []string{b2, "base:"}, []string{b2, metaBaseAlloc}},
		{optListMetaContext, "v", []string{"qemu:dirty-bitmap:nope", "qemu:allocation-depth"}, nil},
		{optListMetaContext, "plain", nil, []string{metaBaseAlloc}},
		{optListMetaContext, "plain", []string{"qemu:"}, nil},
		{optSetMetaContext, "v", []string{"qemu:", "qemu:dirty-bitmap:"}, nil},
		{optSetMetaContext, "v", []string{b2, metaBaseAlloc, b1, b2}, []string{b2, metaBaseAlloc, b1}},
		{optSetMetaContext, "plain", []string{b1}, nil},
	} {
		ctxs, r := c.metaContexts(tt.opt, tt.export, tt.queries...)
		if r.typ != repAck {
			t.Fatalf("%d %s %q: %#x", tt.opt, tt.export, tt.queries, r.typ)
		}
		var got []string
		ids := map[uint32]bool{}
		for name, id := range ctxs {
			got = append(got, name)
			if tt.opt == optSetMetaContext && (id == 0 || ids[id]) {
				t.Errorf("SET %q: context id %d zero or repeated", tt.queries, id)
			}
			ids[id] = true
		}
		sort.Strings(got)
		want := slices.Clone(tt.want)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Fatalf("%d %s %q: contexts %q, want %q", tt.opt, tt.export, tt.queries, got, tt.want)
		}
	}
	// A query repeated past the limit still selects one context.
	var many []string
	for range maxMetaContexts + 1 {
		many = append(many, b1)
	}
	if _, r := c.metaContexts(optSetMetaContext, "v", many...); r.typ != repAck {
		t.Fatalf("repeated queries select once: %#x", r.typ)
	}
}

func TestBitmapBlockStatus(t *testing.T) {
	cat, e := bitmapCatalog()
	ts := startServer(t, cat, Options{})
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle | clientFlagNoZeroes)
	c.enableStructured()
	ids := c.setMeta("v", metaBaseAlloc, "qemu:dirty-bitmap:b1")
	c.goExport("v")
	alloc, b1 := ids[metaBaseAlloc], ids["qemu:dirty-bitmap:b1"]
	if alloc == b1 {
		t.Fatalf("one id for two contexts: %v", ids)
	}

	rep := mustOK(t, c.cmd(cmdBlockStatus, 0, 0, 1<<20))
	if rep.chunks != 2 || len(rep.byCtx) != 2 {
		t.Fatalf("%d chunks for %d contexts, want one per context", rep.chunks, len(rep.byCtx))
	}
	if want := []extent{{8192, holeFlags}, {8192, 0}, {1<<20 - 16384, holeFlags}}; !slices.Equal(rep.byCtx[alloc], want) {
		t.Fatalf("base:allocation %v", rep.byCtx[alloc])
	}
	if want := []extent{{4096, 0}, {8192, stateDirty}, {1<<20 - 12288 - 512, 0}, {512, stateDirty}}; !slices.Equal(rep.byCtx[b1], want) {
		t.Fatalf("dirty bitmap %v", rep.byCtx[b1])
	}

	// REQ_ONE: one descriptor per chunk, never longer than asked.
	for _, off := range []uint64{0, 4096, 6144, 1<<20 - 1024} {
		rep = mustOK(t, c.cmd(cmdBlockStatus, cmdFlagReqOne, off, 1024))
		for id, exts := range rep.byCtx {
			if len(exts) != 1 || exts[0].length == 0 || exts[0].length > 1024 {
				t.Fatalf("REQ_ONE at %d, context %d: %v", off, id, exts)
			}
		}
		if len(rep.byCtx) != 2 {
			t.Fatalf("REQ_ONE: %d contexts answered", len(rep.byCtx))
		}
	}
	// Partial answers: the export stops early, the server asks again, and
	// no chunk covers more than the request.
	e.maxRun = 1024
	rep = mustOK(t, c.cmd(cmdBlockStatus, 0, 2048, 20000))
	for id, exts := range rep.byCtx {
		total := 0
		for _, x := range exts {
			total += int(x.length)
		}
		if total == 0 || total > 20000 {
			t.Fatalf("context %d: %d bytes for a 20000-byte request", id, total)
		}
	}
	if want := []extent{{2048, 0}, {8192, stateDirty}, {9760, 0}}; !slices.Equal(rep.byCtx[b1], want) {
		t.Fatalf("dirty bitmap from 2048: %v, want %v", rep.byCtx[b1], want)
	}
	e.maxRun = 0

	// A failing bitmap fails the whole request, with no chunk sent first.
	e.fail = errors.New("bitmap gone")
	mustErr(t, c.cmd(cmdBlockStatus, 0, 0, 4096), errnoIO)
	e.fail = nil
	mustOK(t, c.cmd(cmdBlockStatus, 0, 0, 4096))
}

func TestBitmapOnlyContext(t *testing.T) {
	cat, _ := bitmapCatalog()
	ts := startServer(t, cat, Options{})
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle | clientFlagNoZeroes)
	c.enableStructured()
	ids := c.setMeta("v", "qemu:dirty-bitmap:b2")
	c.goExport("v")
	rep := mustOK(t, c.cmd(cmdBlockStatus, 0, 0, 4096))
	if rep.chunks != 1 || !slices.Equal(rep.byCtx[ids["qemu:dirty-bitmap:b2"]], []extent{{512, stateDirty}, {3584, 0}}) {
		t.Fatalf("%d chunks: %v", rep.chunks, rep.byCtx)
	}
}

// TestRealClientDirtyBitmap reads the bitmap with nbdinfo --map and with
// Python libnbd negotiating base:allocation and the bitmap together (as
// oVirt imageio does), and lists contexts with nbdinfo.
func TestRealClientDirtyBitmap(t *testing.T) {
	cat, _ := bitmapCatalog()
	ts := startServer(t, cat, Options{})
	uri := "nbd://" + ts.addr + "/v"
	out := runTool(t, "nbdinfo", "--map=qemu:dirty-bitmap:b1", uri)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	want := []string{"0 4096 0 clean", "4096 8192 1 dirty", "12288 1035776 0 clean", "1048064 512 1 dirty"}
	if !slices.Equal(lines, want) {
		t.Fatalf("nbdinfo --map:\n%s\nwant %q", out, want)
	}
	out = runTool(t, "nbdinfo", "--list", "--json", "nbd://"+ts.addr)
	if !strings.Contains(out, "qemu:dirty-bitmap:b1") || !strings.Contains(out, "qemu:dirty-bitmap:b2") {
		t.Fatalf("nbdinfo --list does not show the bitmaps:\n%s", out)
	}

	py := libnbdPython(t)
	script := `
import nbd, sys
h = nbd.NBD()
h.add_meta_context("base:allocation")
h.add_meta_context("qemu:dirty-bitmap:b1")
h.connect_uri(sys.argv[1])
assert h.can_meta_context("base:allocation")
assert h.can_meta_context("qemu:dirty-bitmap:b1")
seen = {}
def cb(ctx, off, entries, err):
    seen[ctx] = entries
h.block_status(1 << 20, 0, cb)
print(seen["base:allocation"])
print(seen["qemu:dirty-bitmap:b1"])
seen.clear()
h.block_status(1024, 4096, cb, nbd.CMD_FLAG_REQ_ONE)
print(seen["qemu:dirty-bitmap:b1"])
`
	cmd := exec.Command(py, "-c", script, uri)
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python libnbd: %v\n%s", err, got)
	}
	wantPy := "[8192, 3, 8192, 0, 1032192, 3]\n[4096, 0, 8192, 1, 1035776, 0, 512, 1]\n[1024, 1]\n"
	if string(got) != wantPy {
		t.Fatalf("python libnbd:\n%s\nwant\n%s", got, wantPy)
	}
}
