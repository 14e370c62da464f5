package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/lfs"
)

const mib = 1 << 20

// sparseImage writes a 16 MiB + 512 B image: random data at 1-2 MiB and
// 9.5-11 MiB, allocated zeros at 4-5 MiB, a few bytes at the very end and
// holes elsewhere. It returns the path and the contents.
func sparseImage(t *testing.T) (string, []byte) {
	t.Helper()
	const size = 16*mib + 512
	want := make([]byte, size)
	rng := rand.New(rand.NewSource(1))
	rng.Read(want[1*mib : 2*mib])
	rng.Read(want[9*mib+mib/2 : 11*mib])
	copy(want[size-3:], "end")
	path := filepath.Join(t.TempDir(), "image.raw")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range [][2]int{{1 * mib, 2 * mib}, {4 * mib, 5 * mib}, {9*mib + mib/2, 11 * mib}, {size - 3, size}} {
		if _, err := f.WriteAt(want[r[0]:r[1]], int64(r[0])); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return path, want
}

// allocated returns the bytes of disk a file occupies.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// readVolume returns the whole contents of a volume.
func readVolume(t *testing.T, dir, name string) []byte {
	t.Helper()
	v, err := lfs.Open(dirStore(t, dir), name, lfs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	b := make([]byte, v.Size())
	if err := v.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestImport(t *testing.T) {
	store, dir := testStore(t)
	image, want := sparseImage(t)
	mustHLFS(t, store, "create", "demo", "--size", "32M")
	// Data already in the volume is replaced where the image is, even by
	// its holes, and kept past the image's end unless --zero-rest.
	v, err := lfs.Open(dirStore(t, dir), "demo", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte{0xee}, 3*mib)
	for _, off := range []int64{6 * mib, 20 * mib} {
		if err := v.WriteAt(junk, off, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}

	r := hlfs(t, store, "import", image, "demo")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("import: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r.stderr != "hlfs: demo: the image ends at 16.0 MiB (16777728 bytes); the rest of the volume (15.9 MiB (16776704 bytes)) holds what it held before (--zero-rest makes it zeros)\n" {
		t.Errorf("import of a shorter image: stderr %q", r.stderr)
	}
	got := readVolume(t, dir, "demo")
	if !bytes.Equal(got[:len(want)], want) {
		t.Error("volume does not read as the image")
	}
	if !isZero(got[len(want):20*mib]) || !bytes.Equal(got[20*mib:23*mib], junk) || !isZero(got[23*mib:]) {
		t.Error("past the image's end the volume does not hold what it held")
	}

	if out := mustHLFS(t, store, "import", "--zero-rest", image, "demo"); out != "" {
		t.Errorf("import --zero-rest printed %q", out)
	}
	got = readVolume(t, dir, "demo")
	if !bytes.Equal(got[:len(want)], want) || !isZero(got[len(want):]) {
		t.Error("after import --zero-rest the volume does not read as the image followed by zeros")
	}
	// Thin: the 6 MiB of junk, twice the 2.5 MiB of image data and a
	// little overhead, not the allocated zeros or the holes.
	if info := statVolume(t, dir, "demo"); info.BytesStored > 6*mib+2*3*mib {
		t.Errorf("volume stores %d bytes for 6 MiB of junk and twice 2.5 MiB of image data", info.BytesStored)
	}
	mustHLFS(t, store, "fsck", "demo")
}

// A small image in a big volume stores about the image's data: the rest of
// the volume becomes holes, not data.
func TestImportStaysThin(t *testing.T) {
	store, dir := testStore(t)
	image, _ := sparseImage(t)
	mustHLFS(t, store, "create", "demo", "--size", "1G")
	mustHLFS(t, store, "import", "--zero-rest", image, "demo")
	first := statVolume(t, dir, "demo").BytesStored
	if first > 3*mib {
		t.Errorf("importing 2.5 MiB of data into a 1 GiB volume stored %d bytes", first)
	}
}

// A missing volume is created as large as the image (rounded up to the
// block size) or --size; --size grows a smaller volume.
func TestImportCreatesAndGrows(t *testing.T) {
	store, dir := testStore(t)
	image, want := sparseImage(t)
	if out := mustHLFS(t, store, "import", image, "new"); out != "created new: 16.0 MiB, 4 KiB blocks\n" {
		t.Errorf("import into a new volume: stdout %q", out)
	}
	if info := statVolume(t, dir, "new"); info.Size != 16*mib+4096 {
		t.Errorf("new volume of %d bytes for an image of %d", info.Size, len(want))
	}
	if got := readVolume(t, dir, "new"); !bytes.Equal(got[:len(want)], want) || !isZero(got[len(want):]) {
		t.Error("the new volume does not read as the image")
	}
	mustHLFS(t, store, "import", image, "big", "--size", "64M")
	if info := statVolume(t, dir, "big"); info.Size != 64*mib {
		t.Errorf("import --size 64M made a volume of %d bytes", info.Size)
	}
	mustHLFS(t, store, "create", "small", "--size", "8M")
	mustHLFS(t, store, "import", image, "small", "--size", "20M")
	if info := statVolume(t, dir, "small"); info.Size != 20*mib {
		t.Errorf("import --size 20M grew the volume to %d bytes", info.Size)
	}
	if got := readVolume(t, dir, "small"); !bytes.Equal(got[:len(want)], want) {
		t.Error("the grown volume does not read as the image")
	}
}

func TestImportErrors(t *testing.T) {
	store, dir := testStore(t)
	image, _ := sparseImage(t)
	mustHLFS(t, store, "create", "small", "--size", "8M")
	wantError(t, hlfs(t, store, "import", image, "small"), 1,
		"larger than volume small (8 MiB)", "grow the volume with --size 16781312")
	wantError(t, hlfs(t, store, "import", image, "small", "--size", "4M"), 1,
		"--size 4 MiB (4194304 bytes) is smaller than volume small", "never shrinks")
	wantError(t, hlfs(t, store, "import", image, "nope", "--size", "1M"), 1, "is larger than --size 1 MiB")
	wantError(t, hlfs(t, store, "import", filepath.Join(t.TempDir(), "missing"), "small"), 1, "no such file")
	wantError(t, hlfs(t, store, "import", image), 2, "missing VOLUME")
	wantError(t, hlfs(t, store, "import"), 2, "missing SOURCE and VOLUME")
	wantError(t, hlfs(t, store, "import", image, "small@s"), 1, "is a snapshot, not a volume")
	wantError(t, hlfs(t, store, "import", image, "../x"), 1, "invalid volume name")
	wantError(t, hlfs(t, store, "import", image, "small", "--size", "x"), 2, "--size")
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wantError(t, hlfs(t, store, "import", empty, "e"), 1, "is empty: give --size")
	// Nothing was created or changed by the refusals.
	if _, err := lfs.Stat(dirStore(t, dir), "nope"); !errors.Is(err, lfs.ErrNotFound) {
		t.Errorf("a refused import created a volume: %v", err)
	}
	if info := statVolume(t, dir, "small"); info.Size != 8*mib || info.Segments != 0 {
		t.Errorf("a refused import changed the volume: %+v", info)
	}
}

// hlfsStdin runs the command line in-process with --store store and stdin.
func hlfsStdin(t *testing.T, store string, stdin io.Reader, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := newCLI(context.Background(), &stdout, &stderr, func(string) string { return "" })
	c.stdin = stdin
	code := c.main(append([]string{"--store", store}, args...))
	return result{code, stdout.String(), stderr.String()}
}

// Streams (standard input, pipes, character devices) are read to their
// end; their length is not known beforehand (issue 10, item 1).
func TestImportStream(t *testing.T) {
	store, dir := testStore(t)
	data := make([]byte, 3*mib+1000) // not a whole number of blocks
	rand.New(rand.NewSource(2)).Read(data)
	copy(data[mib:2*mib], make([]byte, mib)) // a zero run: a hole

	wantError(t, hlfsStdin(t, store, bytes.NewReader(data), "import", "-", "s"), 2,
		"standard input has no length known beforehand: give --size to create volume s")
	r := hlfsStdin(t, store, bytes.NewReader(data), "import", "-", "s", "--size", "8M")
	if r.code != 0 || r.stdout != "created s: 8 MiB, 4 KiB blocks\n" || r.stderr != "" {
		t.Fatalf("import - into a new volume: %+v", r)
	}
	got := readVolume(t, dir, "s")
	if !bytes.Equal(got[:len(data)], data) || !isZero(got[len(data):]) {
		t.Error("the volume does not read as the stream")
	}

	// Into a volume holding data: kept past the stream's end.
	v, err := lfs.Open(dirStore(t, dir), "s", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte{0xee}, 4*mib)
	if err := v.WriteAt(junk, 4*mib, false); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	short := data[:2*mib+10]
	r = hlfsStdin(t, store, bytes.NewReader(short), "import", "-", "s")
	if r.code != 0 || !strings.Contains(r.stderr, "holds what it held before (--zero-rest") {
		t.Fatalf("import of a short stream: %+v", r)
	}
	got = readVolume(t, dir, "s")
	if !bytes.Equal(got[:len(short)], short) || !bytes.Equal(got[len(short):3*mib+1000], data[len(short):]) ||
		!bytes.Equal(got[4*mib:], junk) {
		t.Error("a short stream changed the volume past its end")
	}
	mustHLFSStdin(t, store, bytes.NewReader(short), "import", "-", "s", "--zero-rest")
	got = readVolume(t, dir, "s")
	if !bytes.Equal(got[:len(short)], short) || !isZero(got[len(short):]) {
		t.Error("import --zero-rest of a stream: the rest is not zero")
	}
	mustHLFS(t, store, "fsck", "s")
}

func mustHLFSStdin(t *testing.T, store string, stdin io.Reader, args ...string) {
	t.Helper()
	if r := hlfsStdin(t, store, stdin, args...); r.code != 0 {
		t.Fatalf("hlfs %v: %+v", args, r)
	}
}

// /dev/urandom used to wipe the volume and exit 0: a character device is
// a stream, read until the volume is full, and one longer than the volume
// is an error that says what the volume holds (issue 10, item 1).
func TestImportCharacterDevice(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "r", "--size", "2M")
	wantError(t, hlfs(t, store, "import", "/dev/urandom", "r"), 1,
		"/dev/urandom is longer than volume r (2 MiB (2097152 bytes))", "holds its first 2 MiB", "give --size")
	got := readVolume(t, dir, "r")
	zeros := 0
	for off := 0; off < len(got); off += 4096 {
		if isZero(got[off : off+4096]) {
			zeros++
		}
	}
	if zeros > 0 {
		t.Errorf("after importing /dev/urandom %d blocks of the volume read as zeros", zeros)
	}
	// /dev/null is an empty stream: nothing changes.
	r := hlfs(t, store, "import", "/dev/null", "r")
	if r.code != 0 || !strings.Contains(r.stderr, "the image ends at 0 bytes") {
		t.Errorf("import /dev/null: %+v", r)
	}
	if !bytes.Equal(readVolume(t, dir, "r"), got) {
		t.Error("importing /dev/null changed the volume")
	}
	mustHLFS(t, store, "fsck", "r")
}

// A named pipe is a stream too.
func TestImportPipe(t *testing.T) {
	store, dir := testStore(t)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 2*mib+512)
	rand.New(rand.NewSource(3)).Read(data)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		for p := data; len(p) > 0; p = p[min(len(p), 4000):] {
			if _, err := f.Write(p[:min(len(p), 4000)]); err != nil {
				return
			}
		}
	}()
	mustHLFS(t, store, "import", fifo, "p", "--size", "4M")
	if got := readVolume(t, dir, "p"); !bytes.Equal(got[:len(data)], data) || !isZero(got[len(data):]) {
		t.Error("the volume does not read as what went through the pipe")
	}
}

// What is neither a file, a block device nor a stream is refused with one
// line, before anything is created (a directory used to claim 7.9 EiB).
func TestImportRefusesOtherKinds(t *testing.T) {
	store, dir := testStore(t)
	wantError(t, hlfs(t, store, "import", t.TempDir(), "d"), 1, "it is a directory; want a regular file, a block device")
	sock := filepath.Join(os.TempDir(), fmt.Sprintf("hlfs-import-test-%d.sock", os.Getpid()))
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	wantError(t, hlfs(t, store, "import", sock, "d"), 1, "it is a socket")
	if _, err := lfs.Stat(dirStore(t, dir), "d"); !errors.Is(err, lfs.ErrNotFound) {
		t.Errorf("a refused import created the volume: %v", err)
	}
}

// A block device's size comes from the device (a loop device over a file;
// skipped where none can be set up).
func TestImportBlockDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for losetup")
	}
	losetup, err := exec.LookPath("losetup")
	if err != nil {
		t.Skip("no losetup")
	}
	store, dir := testStore(t)
	backing := filepath.Join(t.TempDir(), "disk")
	data := make([]byte, 6*mib)
	rand.New(rand.NewSource(4)).Read(data[mib : 3*mib])
	if err := os.WriteFile(backing, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(losetup, "--find", "--show", "--read-only", backing).CombinedOutput()
	if err != nil {
		t.Skipf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command(losetup, "-d", dev).Run() })
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	size, err := cliutil.BlockDeviceSize(f)
	f.Close()
	if err != nil || size != int64(len(data)) {
		t.Fatalf("BlockDeviceSize(%s) = %d, %v; want %d", dev, size, err, len(data))
	}
	if out := mustHLFS(t, store, "import", dev, "b"); out != "created b: 6 MiB, 4 KiB blocks\n" {
		t.Errorf("import of %s: %q", dev, out)
	}
	if got := readVolume(t, dir, "b"); !bytes.Equal(got, data) {
		t.Errorf("the volume does not read as %s", dev)
	}
	if info := statVolume(t, dir, "b"); info.BytesStored > 3*mib {
		t.Errorf("the device's zeros were stored: %d bytes", info.BytesStored)
	}
}

func TestIsZero(t *testing.T) {
	for n := range 20 {
		b := make([]byte, n)
		if !isZero(b) {
			t.Fatalf("isZero(%d zeros) = false", n)
		}
		for i := range b {
			b[i] = 1
			if isZero(b) {
				t.Fatalf("isZero with byte %d of %d set = true", i, n)
			}
			b[i] = 0
		}
	}
}

// An interrupted import stops with one line and releases the volume.
func TestImportInterrupted(t *testing.T) {
	store, dir := testStore(t)
	image, _ := sparseImage(t)
	mustHLFS(t, store, "create", "demo", "--size", "32M")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	c := newCLI(ctx, &stdout, &stderr, func(string) string { return "" })
	code := c.main([]string{"--store", store, "import", image, "demo"})
	wantError(t, result{code, stdout.String(), stderr.String()}, 1, "interrupted")
	if info := statVolume(t, dir, "demo"); info.Owner != nil {
		t.Errorf("demo still owned: %+v", info.Owner)
	}
}
