package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hlfs/hlfs/internal/rbddiff"
	"github.com/hlfs/hlfs/lfs"
)

// pointContents reads a volume and each of its snapshots ("" = the volume).
func pointContents(t *testing.T, dir, name string) map[string][]byte {
	t.Helper()
	v, err := lfs.Open(dirStore(t, dir), name, lfs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	out := map[string][]byte{}
	b := make([]byte, v.Size())
	if err := v.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	out[""] = b
	for _, s := range v.SnapshotNames() {
		view, err := v.SnapshotView(s)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, v.Size())
		if err := view.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		out[s] = b
	}
	return out
}

// TestExportImportDiffChain is the model test of incremental replication:
// random writes, zero writes and trims, snapshots s1..s6, rollbacks and
// cleaning passes on one volume; then a chain of export-diff / import-diff
// into a second store (a full stream for s1, one diff per later snapshot,
// one to the volume as it is, one of them through standard input): every
// snapshot and the volume read the same in both stores.
func TestExportImportDiffChain(t *testing.T) {
	for seed := int64(1); seed <= 2; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			src, srcDir := testStore(t)
			dst, dstDir := testStore(t)
			const size = 4 * mib
			mustHLFS(t, src, "create", "vm", "--size", "4M")
			rng := rand.New(rand.NewSource(seed))
			v, err := lfs.Open(dirStore(t, srcDir), "vm", lfs.Options{})
			if err != nil {
				t.Fatal(err)
			}
			snaps, gcs, rollbacks := 0, 0, 0
			for step := 0; snaps < 6 || step < 80; step++ {
				off := rng.Int63n(size)
				n := 1 + rng.Int63n(min(size-off, 256<<10))
				switch r := rng.Intn(100); {
				case r < 55:
					b := make([]byte, n)
					rng.Read(b)
					if rng.Intn(4) == 0 {
						clear(b[len(b)/3 : 2*len(b)/3]) // zero blocks become holes
					}
					err = v.WriteAt(b, off, false)
				case r < 62:
					err = v.Zero(off, n, false, false)
				case r < 75:
					err = v.Zero(off, n, true, false)
				case r < 85 && snaps < 6:
					snaps++
					err = v.CreateSnapshot(fmt.Sprintf("s%d", snaps))
				case r < 90 && snaps > 1:
					if err = v.Close(); err == nil {
						err = lfs.Rollback(dirStore(t, srcDir), "vm", fmt.Sprintf("s%d", 1+rng.Intn(snaps)))
						rollbacks++
					}
					if err == nil {
						v, err = lfs.Open(dirStore(t, srcDir), "vm", lfs.Options{})
					}
				default:
					_, err = v.GC(lfs.GCOptions{MaxUtilization: 0.99})
					gcs++
				}
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
			}
			if err := v.Close(); err != nil {
				t.Fatal(err)
			}
			t.Logf("rollbacks %d, gc passes %d", rollbacks, gcs)

			stream := filepath.Join(t.TempDir(), "s")
			prev := ""
			for i := 1; i <= 7; i++ {
				args := []string{"export-diff", "vm"}
				if i <= 6 {
					args[1] = fmt.Sprintf("vm@s%d", i)
				}
				if prev != "" {
					args = append(args, "--from-snap", prev)
				}
				if i == 4 { // through a pipe
					out := mustHLFS(t, src, append(args, "-")...)
					if r := hlfsStdin(t, dst, strings.NewReader(out), "import-diff", "-", "copy"); r.code != 0 {
						t.Fatalf("import-diff - : %d %s", r.code, r.stderr)
					}
				} else {
					mustHLFS(t, src, append(args, stream)...)
					mustHLFS(t, dst, "import-diff", stream, "copy")
				}
				prev = fmt.Sprintf("s%d", i)
			}
			want, got := pointContents(t, srcDir, "vm"), pointContents(t, dstDir, "copy")
			if len(got) != 7 {
				t.Fatalf("the copy has %d points, want 6 snapshots and the volume", len(got))
			}
			for p, b := range want {
				if !bytes.Equal(b, got[p]) {
					t.Errorf("point %q differs between the volume and its copy", p)
				}
			}
			mustHLFS(t, dst, "fsck", "copy")
		})
	}
}

// streamOf exports a diff into memory.
func streamOf(t *testing.T, store string, args ...string) []byte {
	t.Helper()
	return []byte(mustHLFS(t, store, append(append([]string{"export-diff"}, args...), "-")...))
}

// TestImportDiffRefusesBadStreams checks that a stream that is cut short,
// has a flipped byte in a length, reaches past its size, or starts from
// another snapshot is refused with one line and leaves the target exactly
// as it was, snapshots included.
func TestImportDiffRefusesBadStreams(t *testing.T) {
	src, srcDir := testStore(t)
	dst, dstDir := testStore(t)
	mustHLFS(t, src, "create", "vm", "--size", "2M")
	v, err := lfs.Open(dirStore(t, srcDir), "vm", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	write := func(off int64, n int, b byte) {
		if err := v.WriteAt(bytes.Repeat([]byte{b}, n), off, false); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 8192, 1)
	v.CreateSnapshot("s1")
	write(4096, 4096, 2)
	write(mib, 100, 3)
	v.CreateSnapshot("s2")
	write(3*4096, 4096, 4)
	v.CreateSnapshot("s3")
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	mustHLFS(t, dst, "import-diff", writeFile(t, streamOf(t, src, "vm@s1")), "copy")
	before := pointContents(t, dstDir, "copy")

	good := streamOf(t, src, "vm@s2", "--from-snap", "s1")
	wOff := bytes.IndexByte(good[12:], 'w') + 12 // the first write record
	flip := func(i int, mask byte) []byte {
		b := bytes.Clone(good)
		b[i] ^= mask
		return b
	}
	farOffset := bytes.Clone(good)
	binary.LittleEndian.PutUint64(farOffset[wOff+9:], 2*mib-10) // 8 KiB from there passes the end
	for _, tt := range []struct {
		name   string
		stream []byte
		want   string
	}{
		{"truncated", good[:len(good)-1], "ends before its end record"},
		{"cut in data", good[:wOff+100], "ends before its end record"},
		{"flipped record length", flip(wOff+2, 0x01), "malformed"},
		{"flipped data length", flip(wOff+18, 0x01), "malformed"},
		{"offset past the end", farOffset, "beyond the image size"},
		{"wrong base", streamOf(t, src, "vm@s3", "--from-snap", "s2"), "applies to copy@s2, but copy has newest snapshot s1"},
		{"not a stream", []byte("QFI\xfb, a qcow2 header"), "not an rbd diff stream"},
		{"trailing bytes", append(bytes.Clone(good), 'e'), "bytes after the end record"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, hlfs(t, dst, "import-diff", writeFile(t, tt.stream), "copy"), 1, tt.want, "copy is unchanged")
			wantError(t, hlfsStdin(t, dst, bytes.NewReader(tt.stream), "import-diff", "-", "copy"), 1, tt.want, "standard input")
			after := pointContents(t, dstDir, "copy")
			if len(after) != len(before) {
				t.Fatalf("points %d, were %d", len(after), len(before))
			}
			for p := range before {
				if !bytes.Equal(before[p], after[p]) {
					t.Fatalf("point %q changed", p)
				}
			}
		})
	}
	// The good stream applies, and applying it again is a no-op.
	mustHLFS(t, dst, "import-diff", writeFile(t, good), "copy")
	r := hlfs(t, dst, "import-diff", writeFile(t, good), "copy")
	if r.code != 0 || !bytes.Contains([]byte(r.stderr), []byte("imported already")) {
		t.Fatalf("second import: %d %q", r.code, r.stderr)
	}
	if got := pointContents(t, dstDir, "copy"); !bytes.Equal(got["s2"], pointContents(t, srcDir, "vm")["s2"]) {
		t.Fatal("copy@s2 differs from vm@s2")
	}
	// A diff into a volume that lacks its base.
	wantError(t, hlfs(t, dst, "import-diff", writeFile(t, good), "other"), 1, `no volume "other"`)
}

// TestImportDiffCompletesAnInterruptedImport applies part of a stream by
// hand (as a crash would leave it), then the whole stream: the import
// completes; writes that are not the stream's are refused.
func TestImportDiffCompletesAnInterruptedImport(t *testing.T) {
	src, srcDir := testStore(t)
	dst, dstDir := testStore(t)
	mustHLFS(t, src, "create", "vm", "--size", "1M")
	v, err := lfs.Open(dirStore(t, srcDir), "vm", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v.WriteAt(bytes.Repeat([]byte{1}, 64<<10), 0, false)
	v.CreateSnapshot("s1")
	v.WriteAt(bytes.Repeat([]byte{2}, 4096), 8192, false)
	v.Zero(512<<10, 8192, true, false)
	v.WriteAt(bytes.Repeat([]byte{3}, 4096), 900<<10, false)
	v.CreateSnapshot("s2")
	v.Close()
	mustHLFS(t, dst, "import-diff", writeFile(t, streamOf(t, src, "vm@s1")), "copy")
	stream := streamOf(t, src, "vm@s2", "--from-snap", "s1")

	// Half applied: the first write record only.
	r, err := rbddiff.NewReader(bytes.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := r.Next()
	if err != nil || rec.Kind != rbddiff.Write {
		t.Fatalf("first record %+v, %v", rec, err)
	}
	data := make([]byte, rec.Len)
	r.Data(data)
	c, err := lfs.Open(dirStore(t, dstDir), "copy", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.WriteAt(data, int64(rec.Off), false)
	c.Close()
	mustHLFS(t, dst, "import-diff", writeFile(t, stream), "copy")
	want, got := pointContents(t, srcDir, "vm"), pointContents(t, dstDir, "copy")
	for _, p := range []string{"s1", "s2", ""} {
		if !bytes.Equal(want[p], got[p]) {
			t.Fatalf("point %q differs after completing the import", p)
		}
	}

	// Another write after s2, outside any range of the next stream, is
	// refused: applying would not give the source's s3.
	src2 := streamOf(t, src, "vm", "--from-snap", "s2") // no change: empty diff
	c, _ = lfs.Open(dirStore(t, dstDir), "copy", lfs.Options{})
	c.WriteAt([]byte{9}, 700<<10, false)
	c.Close()
	wantError(t, hlfs(t, dst, "import-diff", writeFile(t, src2), "copy"), 1, "holds data at 716800", "roll it back first")
}

// TestExportDiffFormats checks export-diff's arguments, its v1 output
// (what rbd import-diff reads) and a full export of a thin volume.
func TestExportDiffFormats(t *testing.T) {
	src, srcDir := testStore(t)
	mustHLFS(t, src, "create", "vm", "--size", "16M")
	v, err := lfs.Open(dirStore(t, srcDir), "vm", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v.WriteAt(bytes.Repeat([]byte{5}, 4096), 5*mib, false)
	v.CreateSnapshot("s1")
	v.Close()
	full := streamOf(t, src, "vm@s1", "--format", "1")
	r, err := rbddiff.NewReader(bytes.NewReader(full))
	if err != nil {
		t.Fatal(err)
	}
	if h := r.Header(); h.Version != 1 || h.From != "" || h.To != "s1" || h.Size != 16*mib {
		t.Fatalf("header %+v", h)
	}
	var recs []rbddiff.Record
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		recs = append(recs, rec)
	}
	want := []rbddiff.Record{{Kind: rbddiff.Zero, Off: 0, Len: 5 * mib}, {Kind: rbddiff.Write, Off: 5 * mib, Len: 4096}, {Kind: rbddiff.Zero, Off: 5*mib + 4096, Len: 11*mib - 4096}}
	if !slices.Equal(recs, want) {
		t.Fatalf("records %+v, want %+v", recs, want)
	}
	if len(full) > 4096+200 {
		t.Errorf("a full stream of 4 KiB of data is %d bytes", len(full))
	}
	wantError(t, hlfs(t, src, "export-diff", "vm@s1", "--format", "3", "-"), 2, "--format")
	wantError(t, hlfs(t, src, "export-diff", "vm@nope", "-"), 1, `no snapshot "nope"`)
	wantError(t, hlfs(t, src, "export-diff", "vm", "--from-snap", "nope", "-"), 1, `no snapshot "nope"`)
	wantError(t, hlfs(t, src, "export-diff", "vm@s1", "--from-snap", "s1", "-"), 1, "needs an older one")
	wantError(t, hlfs(t, src, "export-diff", "vm@s1"), 2, "missing FILE|-")
}

// writeFile writes b to a new temporary file and returns its name.
func writeFile(t *testing.T, b []byte) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stream")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return f.Name()
}
