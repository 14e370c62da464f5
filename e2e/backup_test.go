package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Incremental backup with real clients: the qemu:dirty-bitmap:SNAPSHOT
// contexts read by nbdinfo and by QEMU's NBD client (x-dirty-bitmap), and
// export-diff / import-diff run as processes, killed with SIGKILL.

// dirtyRanges reads qemu:dirty-bitmap:bitmap of uri with nbdinfo --map and
// returns the dirty ranges, merged.
func dirtyRanges(tb testing.TB, uri, bitmap string) [][2]int64 {
	tb.Helper()
	out := run(tb, "nbdinfo", "--map=qemu:dirty-bitmap:"+bitmap, uri)
	var got [][2]int64
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var off, n int64
		var flags int
		var desc string
		if _, err := fmt.Sscan(line, &off, &n, &flags, &desc); err != nil {
			tb.Fatalf("nbdinfo --map line %q: %v", line, err)
		}
		if flags&1 == 0 {
			continue
		}
		if k := len(got); k > 0 && got[k-1][1] == off {
			got[k-1][1] = off + n
		} else {
			got = append(got, [2]int64{off, off + n})
		}
	}
	return got
}

// qemuDirtyRanges reads the same bitmap through QEMU's NBD client, which
// reports it as block status with x-dirty-bitmap: dirty areas read as not
// data.
func qemuDirtyRanges(tb testing.TB, addr, export, bitmap string) [][2]int64 {
	tb.Helper()
	host, port, _ := net.SplitHostPort(addr)
	opts := fmt.Sprintf("driver=nbd,server.type=inet,server.host=%s,server.port=%s,export=%s,x-dirty-bitmap=qemu:dirty-bitmap:%s",
		host, port, export, bitmap)
	out := run(tb, "qemu-img", "map", "--output=json", "--image-opts", opts)
	var m []struct {
		Start, Length int64
		Data          bool
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		tb.Fatalf("qemu-img map: %v\n%s", err, out)
	}
	var got [][2]int64
	for _, e := range m {
		if e.Data {
			continue
		}
		if k := len(got); k > 0 && got[k-1][1] == e.Start {
			got[k-1][1] = e.Start + e.Length
		} else {
			got = append(got, [2]int64{e.Start, e.Start + e.Length})
		}
	}
	return got
}

func checkDirty(t *testing.T, s *Server, export, bitmap string, want [][2]int64) {
	t.Helper()
	if got := dirtyRanges(t, s.URI(export), bitmap); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("nbdinfo --map=qemu:dirty-bitmap:%s %s: dirty %v, want %v", bitmap, export, got, want)
	}
	if got := qemuDirtyRanges(t, s.Addr, export, bitmap); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("qemu-img map x-dirty-bitmap=qemu:dirty-bitmap:%s %s: dirty %v, want %v", bitmap, export, got, want)
	}
}

// TestDirtyBitmapClients writes known ranges after a snapshot and reads
// them back as qemu:dirty-bitmap:s1 with nbdinfo and qemu-img, exactly and
// merged: on the volume, on a later snapshot's export, after a gc pass that
// moved the data nobody wrote, and on a clone.
func TestDirtyBitmapClients(t *testing.T) {
	Begin(t, "qemu-io", "qemu-img")
	requireHLFS(t)
	const M = 1 << 20
	s := newServeAllServer(t, Volume{Name: "vm1", Size: 64 * M})
	vm1 := s.URI("vm1")
	// More than a segment, and garbage in the first one (overwritten before
	// s1) so that gc moves the data s1 and the volume share.
	qemuIO(t, vm1, "write -P 0x11 0 48M", "write -P 0x12 16M 8M")
	s.hlfs("snapshot", "create", "vm1@s1")
	qemuIO(t, vm1,
		"write -P 0x22 1M 64k",
		"write -P 0x33 8M 4k",
		"write -P 0x34 8196k 4k", // right after the previous: one range
		"discard 4M 1M",          // data trimmed: a change
		"write -z -u 56M 1M",     // punched zeros where s1 had a hole: no change
		"write -z 60M 4k",        // zeros stored as data where s1 had a hole: a change
		"write -P 0x44 63M 512",
	)
	want := [][2]int64{{1 * M, 1*M + 64<<10}, {4 * M, 5 * M}, {8 * M, 8*M + 8<<10}, {60 * M, 60*M + 4<<10}, {63 * M, 63*M + 512}}
	checkDirty(t, s, "vm1", "s1", want)
	out := s.hlfs("diff", "vm1@s1")
	if !strings.Contains(out, "4194304 1048576 zero") || !strings.Contains(out, "8388608 8192 data") {
		t.Errorf("hlfs diff vm1@s1:\n%s", out)
	}

	s.hlfs("snapshot", "create", "vm1@s2")
	qemuIO(t, vm1, "write -P 0x55 2M 4k")
	checkDirty(t, s, "vm1@s2", "s1", want) // a snapshot's export offers its ancestors
	checkDirty(t, s, "vm1", "s2", [][2]int64{{2 * M, 2*M + 4<<10}})

	// gc moves what the writes left of the first segment; nothing changes.
	var gc struct {
		BytesCopied int64 `json:"bytes_copied"`
	}
	if err := json.Unmarshal([]byte(s.hlfs("gc", "vm1", "--max-utilization", "0.99", "--json")), &gc); err != nil {
		t.Fatal(err)
	}
	if gc.BytesCopied == 0 {
		t.Fatalf("gc moved nothing; the test needs it to move the data s1 shares")
	}
	t.Logf("gc copied %d bytes", gc.BytesCopied)
	want2 := append([][2]int64{}, want...)
	want2 = append(want2[:1], append([][2]int64{{2 * M, 2*M + 4<<10}}, want2[1:]...)...)
	checkDirty(t, s, "vm1", "s1", want2)

	// A clone: what it shares with vm1@s1 is not a change to it.
	s.Stop()
	s.hlfs("clone", "vm1@s1", "c1")
	s.Start()
	c1 := s.URI("c1")
	s.hlfs("snapshot", "create", "c1@base")
	qemuIO(t, c1, "write -P 0x66 12M 128k", "discard 0 64k")
	checkDirty(t, s, "c1", "base", [][2]int64{{0, 64 << 10}, {12 * M, 12*M + 128<<10}})
}

// randomImage writes a file of size bytes: random data with holes.
func randomImage(t *testing.T, path string, size int64, seed int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewSource(seed))
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		if off/int64(len(buf))%5 == 3 {
			continue // a 1 MiB hole every 5 MiB
		}
		rng.Read(buf)
		if _, err := f.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// segmentBytes sums the sizes of a volume's segment objects in a local store.
func segmentBytes(dir, vol string) int64 {
	var n int64
	entries, _ := os.ReadDir(filepath.Join(dir, vol, "seg"))
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// TestImportDiffKill9 kills import-diff with SIGKILL while it applies a
// stream, then runs it again: the import completes, the to-snapshot exists
// once, the volume reads as the source, and fsck is clean. A stream piped
// between two stores (export-diff - | import-diff -) applies the next diff.
func TestImportDiffKill9(t *testing.T) {
	Begin(t)
	requireHLFS(t)
	bin := hlfsBinary(t)
	tmp := t.TempDir()
	src, dst := filepath.Join(tmp, "src"), filepath.Join(tmp, "dst")
	hl := func(store string, args ...string) string { t.Helper(); return hlfsAt(t, bin, store, args...) }
	const size = 96 << 20
	img := filepath.Join(tmp, "img")
	randomImage(t, img, size, 1)
	hl(src, "create", "vm", "--size", "96M")
	hl(src, "import", img, "vm")
	hl(src, "snapshot", "create", "vm@s1")
	stream := filepath.Join(tmp, "s1.diff")
	hl(src, "export-diff", "vm@s1", stream)

	killed := false
	for attempt := 0; attempt < 3 && !killed; attempt++ {
		cmd := exec.Command(bin, "--store", dst, "import-diff", stream, "vm")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
	wait:
		for {
			select {
			case err = <-done:
				break wait
			case <-time.After(2 * time.Millisecond):
				if segmentBytes(dst, "vm") >= 8<<20 {
					cmd.Process.Signal(syscall.SIGKILL)
				}
			}
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			killed = true
			t.Logf("killed after %d segment bytes", segmentBytes(dst, "vm"))
		} else {
			t.Logf("attempt %d: import-diff finished before the kill (%v); again on a fresh target", attempt, err)
			hl(dst, "rm", "vm")
		}
	}
	if !killed {
		t.Fatal("could not kill import-diff while it applied the stream")
	}
	if ls := hl(dst, "snapshot", "ls", "vm"); strings.Contains(ls, "s1") {
		t.Fatalf("the killed import created its snapshot already:\n%s", ls)
	}
	hl(dst, "import-diff", stream, "vm")
	if ls := hl(dst, "snapshot", "ls", "vm", "--json"); strings.Count(ls, `"name": "s1"`) != 1 {
		t.Fatalf("snapshots after the second run:\n%s", ls)
	}
	out := filepath.Join(tmp, "out")
	hl(dst, "export", "vm@s1", out)
	sameFiles(t, img, out)
	hl(dst, "fsck", "vm")

	// The next diff, through a pipe from one store to the other.
	qemuData := filepath.Join(tmp, "patch")
	randomImage(t, qemuData, 3<<20, 2)
	v2 := filepath.Join(tmp, "img2")
	copyFile(t, img, v2)
	patchFile(t, v2, qemuData, 50<<20)
	hl(src, "import", v2, "vm")
	hl(src, "snapshot", "create", "vm@s2")
	pipe := exec.Command("bash", "-o", "pipefail", "-c",
		fmt.Sprintf("%q --store %q export-diff vm@s2 --from-snap s1 - | %q --store %q import-diff - vm", bin, src, bin, dst))
	if b, err := pipe.CombinedOutput(); err != nil {
		t.Fatalf("export-diff | import-diff: %v\n%s", err, b)
	}
	hl(dst, "export", "vm@s2", out)
	sameFiles(t, v2, out)
}

// hlfsAt runs the hlfs binary bin on store and returns its output; it fails
// the test if the command fails.
func hlfsAt(t *testing.T, bin, store string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"--store", store}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("hlfs --store %s %s: %v\n%s", store, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func sameFiles(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s and %s differ (first at %d)", a, b, firstDiff(x, y))
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(to, b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// patchFile writes the contents of patch into path at off.
func patchFile(t *testing.T, path, patch string, off int64) {
	t.Helper()
	b, err := os.ReadFile(patch)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestHDFSExportDiffPipe replicates a volume from a local store into HDFS
// through a pipe, as the README shows: a full stream, then a diff.
func TestHDFSExportDiffPipe(t *testing.T) {
	Begin(t)
	uri := hdfsStoreURI(t)
	bin := hlfsBinary(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	hl := func(store string, args ...string) string { t.Helper(); return hlfsAt(t, bin, store, args...) }
	img := filepath.Join(tmp, "img")
	randomImage(t, img, 16<<20, 3)
	hl(src, "create", "vm", "--size", "16M")
	hl(src, "import", img, "vm")
	hl(src, "snapshot", "create", "vm@s1")
	patch := filepath.Join(tmp, "patch")
	randomImage(t, patch, 1<<20, 4)
	patchFile(t, img, patch, 5<<20)
	hl(src, "import", img, "vm")
	hl(src, "snapshot", "create", "vm@s2")
	for _, from := range []string{"", "s1"} {
		to, args := "vm@s1", ""
		if from != "" {
			to, args = "vm@s2", "--from-snap "+from
		}
		pipe := exec.Command("bash", "-o", "pipefail", "-c",
			fmt.Sprintf("%q --store %q export-diff %s %s - | %q --store %q import-diff - vm", bin, src, to, args, bin, uri))
		if b, err := pipe.CombinedOutput(); err != nil {
			t.Fatalf("export-diff %s | import-diff into HDFS: %v\n%s", to, err, b)
		}
	}
	out := filepath.Join(tmp, "out")
	hl(uri, "export", "vm@s2", out)
	sameFiles(t, img, out)
	hl(uri, "fsck", "vm")
}
