package main

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/hlfs/hlfs/lfs"
)

func TestDiff(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm", "--size", "4M")
	v, err := lfs.Open(dirStore(t, dir), "vm", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(v.WriteAt(bytes.Repeat([]byte{1}, 2*mib), 0, false))
	must(v.CreateSnapshot("s1"))
	must(v.WriteAt(bytes.Repeat([]byte{2}, 4096), 8192, false))
	must(v.WriteAt(bytes.Repeat([]byte{3}, 4096), 12288, false)) // merges with the one before
	must(v.Zero(mib, 65536, true, false))
	must(v.CreateSnapshot("s2"))
	must(v.WriteAt(bytes.Repeat([]byte{4}, 512), 3*mib, false))
	_, err = v.GC(lfs.GCOptions{MaxUtilization: 0.99}) // moves what the snapshots share: no change
	must(err)
	must(v.Close())

	out := mustHLFS(t, store, "diff", "vm@s1", "vm@s2")
	want := "8192 8192 data\n1048576 65536 zero\ntotal: 72 KiB changed in 2 ranges (8 KiB data, 64 KiB zero) of 4 MiB\n"
	if out != want {
		t.Fatalf("diff vm@s1 vm@s2:\n%s\nwant\n%s", out, want)
	}
	out = mustHLFS(t, store, "diff", "vm@s2", "vm")
	if want := "3145728 512 data\ntotal: 512 B changed in 1 ranges (512 B data, 0 B zero) of 4 MiB\n"; out != want {
		t.Fatalf("diff vm@s2 vm:\n%s", out)
	}
	if out2 := mustHLFS(t, store, "diff", "vm@s2"); out2 != out {
		t.Fatalf("diff vm@s2 differs from diff vm@s2 vm: %q", out2)
	}
	var rep diffReport
	if err := json.Unmarshal([]byte(mustHLFS(t, store, "diff", "vm@s1", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	wantRanges := []diffRange{{8192, 8192, "data"}, {mib, 65536, "zero"}, {3 * mib, 512, "data"}}
	if rep.Volume != "vm" || rep.From != "s1" || rep.To != "" || rep.Size != 4*mib || len(rep.Ranges) != 3 ||
		rep.ChangedBytes != 8192+65536+512 || rep.ZeroBytes != 65536 || rep.DataBytes != 8192+512 {
		t.Fatalf("json: %+v", rep)
	}
	for i, r := range wantRanges {
		if rep.Ranges[i] != r {
			t.Fatalf("json range %d: %+v, want %+v", i, rep.Ranges[i], r)
		}
	}

	wantError(t, hlfs(t, store, "diff", "vm"), 1, "names no snapshot")
	wantError(t, hlfs(t, store, "diff", "vm@nope"), 1, `no snapshot "nope" of volume vm`)
	wantError(t, hlfs(t, store, "diff", "vm@s1", "vm@nope"), 1, `no snapshot "nope"`)
	wantError(t, hlfs(t, store, "diff", "vm@s1", "other"), 1, "points of two volumes")
	wantError(t, hlfs(t, store, "diff", "nope@s1"), 1, `no volume "nope"`)
	wantError(t, hlfs(t, store, "diff"), 2, "missing VOLUME@FROM")
	wantError(t, hlfs(t, store, "diff", "a@b", "a", "c"), 2, "unexpected argument")
}

func TestExportSnapshot(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm", "--size", "1M")
	v, err := lfs.Open(dirStore(t, dir), "vm", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v.WriteAt(bytes.Repeat([]byte{7}, 4096), 4096, false)
	v.CreateSnapshot("s1")
	v.WriteAt(bytes.Repeat([]byte{8}, 4096), 4096, false)
	v.Close()
	out := writeFile(t, nil)
	mustHLFS(t, store, "export", "vm@s1", out)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != mib || got[4096] != 7 || got[8191] != 7 || got[8192] != 0 || got[0] != 0 {
		t.Fatalf("exported snapshot: %d bytes, wrong contents", len(got))
	}
}
