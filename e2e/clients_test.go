package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type nbdinfoExport struct {
	Name         string `json:"export-name"`
	Size         int64  `json:"export-size"`
	ReadOnly     bool   `json:"is_read_only"`
	CanFlush     bool   `json:"can_flush"`
	CanFUA       bool   `json:"can_fua"`
	CanTrim      bool   `json:"can_trim"`
	CanZero      bool   `json:"can_zero"`
	CanMultiConn bool   `json:"can_multi_conn"`
	Contexts     []string
}

type nbdinfoJSON struct {
	Protocol   string          `json:"protocol"`
	Structured bool            `json:"structured"`
	Exports    []nbdinfoExport `json:"exports"`
}

func nbdinfo(tb testing.TB, args ...string) nbdinfoJSON {
	tb.Helper()
	out := run(tb, "nbdinfo", append([]string{"--json"}, args...)...)
	var info nbdinfoJSON
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		tb.Fatalf("nbdinfo --json %v: %v\n%s", args, err, out)
	}
	return info
}

// TestNbdinfoFlags checks what the server advertises to a real client.
func TestNbdinfoFlags(t *testing.T) {
	Begin(t)
	s := NewServer(t, Volume{Name: "infovol", Size: 1 << 30})
	info := nbdinfo(t, s.URI("infovol"))
	if info.Protocol != "newstyle-fixed" || !info.Structured {
		t.Errorf("protocol %q structured=%v, want newstyle-fixed with structured replies", info.Protocol, info.Structured)
	}
	if len(info.Exports) != 1 {
		t.Fatalf("%d exports, want 1: %+v", len(info.Exports), info.Exports)
	}
	e := info.Exports[0]
	if e.Name != "infovol" || e.Size != 1<<30 || e.ReadOnly {
		t.Errorf("export %q size %d read-only=%v, want infovol %d writable", e.Name, e.Size, e.ReadOnly, 1<<30)
	}
	for flag, ok := range map[string]bool{
		"can_flush": e.CanFlush, "can_fua": e.CanFUA, "can_trim": e.CanTrim,
		"can_zero": e.CanZero, "can_multi_conn": e.CanMultiConn,
	} {
		if !ok {
			t.Errorf("%s is false", flag)
		}
	}
	if !contains(e.Contexts, "base:allocation") {
		t.Errorf("meta contexts %v lack base:allocation", e.Contexts)
	}
}

// TestNbdinfoList checks NBD_OPT_LIST with several volumes.
func TestNbdinfoList(t *testing.T) {
	Begin(t)
	vols := []Volume{{"alpha", 64 << 20}, {"beta", 128 << 20}, {"gamma-3", 1 << 30}}
	s := NewServer(t, vols...)
	info := nbdinfo(t, "--list", "nbd://"+s.Addr)
	got := map[string]int64{}
	for _, e := range info.Exports {
		got[e.Name] = e.Size
	}
	for _, v := range vols {
		if sz, ok := got[v.Name]; !ok || sz != v.Size {
			t.Errorf("export %s: listed=%v size %d, want size %d", v.Name, ok, sz, v.Size)
		}
	}
	if len(got) != len(vols) {
		t.Errorf("listed %d exports, want %d: %v", len(got), len(vols), got)
	}
	// A name that does not exist must be refused, not served.
	if out, err := exec.Command("nbdinfo", "nbd://"+s.Addr+"/no-such-volume").CombinedOutput(); err == nil {
		t.Errorf("nbdinfo of a missing export succeeded:\n%s", out)
	}
}

// qemuIO runs qemu-io commands against uri and fails tb if any command fails
// or a pattern check does not match.
func qemuIO(tb testing.TB, uri string, cmds ...string) string {
	tb.Helper()
	args := []string{"-f", "raw", uri}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("qemu-io", args...).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("Pattern verification failed")) || bytes.Contains(out, []byte("failed:")) {
		tb.Fatalf("qemu-io %s: %v\n%s", strings.Join(cmds, "; "), err, out)
	}
	return string(out)
}

// TestQemuIOPatterns drives each NBD command through qemu-io: WRITE and
// READ (aligned and unaligned), TRIM, WRITE_ZEROES, FLUSH and FUA writes,
// then restarts the server and checks the data survived.
func TestQemuIOPatterns(t *testing.T) {
	Begin(t, "qemu-io")
	const size = 256 << 20
	s := NewServer(t, Volume{Name: "iovol", Size: size})
	uri := s.URI("iovol")

	// The checker must catch a wrong pattern, or the rest proves nothing.
	out, err := exec.Command("qemu-io", "-f", "raw", uri, "-c", "read -P 0x55 0 4k").CombinedOutput()
	if err == nil && !bytes.Contains(out, []byte("Pattern verification failed")) {
		t.Fatalf("qemu-io did not flag a wrong pattern on a fresh volume:\n%s", out)
	}

	qemuIO(t, uri,
		"read -P 0 0 1M", // fresh volume reads zeros
		"read -P 0 255M 1M",
		"write -P 0xab 0 1M",
		"read -P 0xab 0 1M",
		"write -P 0xcd 4k 4k",
		"read -P 0xab 0 4k",
		"read -P 0xcd 4k 4k",
		"read -P 0xab 8k 1016k",
		"write -P 0x5a 1000 3000", // unaligned, inside one 4K block
		"read -P 0xab 0 1000",
		"read -P 0x5a 1000 3000",
		"read -P 0xab 4000 96",
		"write -P 0x6b 6000 10000", // unaligned, across blocks
		"read -P 0xcd 4k 1904",
		"read -P 0x6b 6000 10000",
		"read -P 0xab 16000 1000",
		"write -P 0x11 255M 1M", // the last MiB
		"read -P 0x11 255M 1M",
	)
	qemuIO(t, uri,
		"discard 0 1M", // TRIM
		"read -P 0 0 1M",
		"write -P 0x77 2M 1M",
		"write -z 2M 512k", // WRITE_ZEROES
		"read -P 0 2M 512k",
		"read -P 0x77 2560k 512k",
		"write -z -u 3M 64k", // WRITE_ZEROES, may unmap
		"read -P 0 3M 64k",
		"write -f -P 0x33 4M 64k", // FUA
		"read -P 0x33 4M 64k",
		"write -P 0x44 8M 4M",
		"flush",
		"write -P 0x55 12M 1M",
		"flush",
	)
	s.Stop()
	s.Fsck("iovol")
	s.Start()
	qemuIO(t, uri,
		"read -P 0 0 1M",
		"read -P 0 2M 512k",
		"read -P 0x77 2560k 512k",
		"read -P 0 3M 64k",
		"read -P 0 3136k 960k",
		"read -P 0x33 4M 64k",
		"read -P 0x44 8M 4M",
		"read -P 0x55 12M 1M",
		"read -P 0 13M 242M",
		"read -P 0x11 255M 1M",
	)
}

type mapExtent struct {
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	Type   int    `json:"type"` // bit 0: hole, bit 1: reads as zero
	Desc   string `json:"description"`
}

func nbdMap(tb testing.TB, uri string) []mapExtent {
	tb.Helper()
	out := run(tb, "nbdinfo", "--map", "--json", uri)
	var m []mapExtent
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		tb.Fatalf("nbdinfo --map --json: %v\n%s", err, out)
	}
	return m
}

// dataBytes sums the allocated (non-hole) bytes of a map, checking that the
// extents tile [0, size).
func dataBytes(tb testing.TB, m []mapExtent, size int64) (data int64, dataRanges [][2]int64) {
	tb.Helper()
	var next int64
	for _, e := range m {
		if e.Offset != next {
			tb.Fatalf("map not contiguous at %d: %+v", next, m)
		}
		next = e.Offset + e.Length
		if e.Type&1 == 0 {
			data += e.Length
			dataRanges = append(dataRanges, [2]int64{e.Offset, next})
		}
	}
	if next != size {
		tb.Fatalf("map covers [0,%d), want [0,%d): %+v", next, size, m)
	}
	return data, dataRanges
}

func covered(ranges [][2]int64, off, n int64) bool {
	for _, r := range ranges {
		if off >= r[0] && off < r[1] {
			if off+n <= r[1] {
				return true
			}
			return covered(ranges, r[1], off+n-r[1])
		}
	}
	return false
}

// TestNbdinfoMapThin checks base:allocation: a fresh volume is one hole,
// written ranges become data, trimmed ones holes again.
func TestNbdinfoMapThin(t *testing.T) {
	Begin(t, "qemu-io")
	const size = 1 << 30
	s := NewServer(t, Volume{Name: "mapvol", Size: size})
	uri := s.URI("mapvol")

	m := nbdMap(t, uri)
	data, _ := dataBytes(t, m, size)
	if data != 0 || len(m) != 1 || m[0].Type != 3 {
		t.Errorf("fresh volume map: %+v, want one hole,zero extent", m)
	}

	written := [][2]int64{{1 << 20, 64 << 10}, {512 << 20, 1 << 20}, {size - 4096, 4096}}
	var cmds []string
	for _, w := range written {
		cmds = append(cmds, fmt.Sprintf("write -P 0x42 %d %d", w[0], w[1]))
	}
	qemuIO(t, uri, cmds...)
	m = nbdMap(t, uri)
	data, ranges := dataBytes(t, m, size)
	var want int64
	for _, w := range written {
		want += w[1]
		if !covered(ranges, w[0], w[1]) {
			t.Errorf("written range [%d,+%d) not reported as data: %+v", w[0], w[1], m)
		}
	}
	// Allow rounding to the server's allocation unit, not more.
	const slack = 3 * 2 * (64 << 10)
	if data > want+slack {
		t.Errorf("map reports %d data bytes for %d written: %+v", data, want, m)
	}

	qemuIO(t, uri, fmt.Sprintf("discard %d %d", 512<<20, 1<<20))
	m = nbdMap(t, uri)
	data2, ranges := dataBytes(t, m, size)
	if covered(ranges, 512<<20, 1<<20) || data2 > data-(1<<20)+slack {
		t.Errorf("trimmed 1 MiB still data (%d -> %d data bytes): %+v", data, data2, m)
	}
	t.Logf("map after writes: %d extents, %d data bytes; after trim: %d", len(m), data, data2)
}

// TestNbdcopyRoundTrip copies a 64 MiB random image in with nbdcopy,
// restarts the server, copies the volume out and compares; then
// `qemu-img convert` must produce an equal, sparse file.
func TestNbdcopyRoundTrip(t *testing.T) {
	Begin(t, "nbdcopy")
	const (
		size    = 1 << 30
		payload = 64 << 20
	)
	s := NewServer(t, Volume{Name: "copyvol", Size: size})
	uri := s.URI("copyvol")
	src := nbdcopyRoundTrip(t, s, "copyvol", size, payload, 42)
	dir := t.TempDir()

	conv := filepath.Join(dir, "conv.img")
	run(t, "qemu-img", "convert", "-f", "raw", "-O", "raw", uri, conv)
	checkImage(t, conv, src, size)
	var st syscall.Stat_t
	if err := syscall.Stat(conv, &st); err != nil {
		t.Fatal(err)
	}
	alloc := st.Blocks * 512
	t.Logf("qemu-img convert: apparent %d bytes, allocated %d", st.Size, alloc)
	if alloc > payload+(4<<20) {
		t.Errorf("qemu-img convert output allocates %d bytes for %d bytes of data: holes not reported", alloc, payload)
	}
}

// nbdcopyRoundTrip copies a random image of payload bytes, with a zero run
// inside, into the running server's volume vol with nbdcopy, restarts the
// server (fsck in between), copies the volume out and compares. It returns
// the image copied in.
func nbdcopyRoundTrip(t *testing.T, s *Server, vol string, size int64, payload int, seed int64) []byte {
	t.Helper()
	dir := t.TempDir()
	src := make([]byte, payload)
	rand.New(rand.NewSource(seed)).Read(src)
	// A zero run inside the payload: copies must keep it zero.
	clear(src[20<<20 : 24<<20])
	in := filepath.Join(dir, "in.img")
	if err := os.WriteFile(in, src, 0o644); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	run(t, "nbdcopy", "--flush", in, s.URI(vol))
	t.Logf("nbdcopy of %d MiB in: %v", payload>>20, time.Since(t0).Round(time.Millisecond))
	s.Stop()
	s.Fsck(vol)
	s.Start()
	out := filepath.Join(dir, "out.img")
	t0 = time.Now()
	run(t, "nbdcopy", s.URI(vol), out)
	t.Logf("nbdcopy out: %v", time.Since(t0).Round(time.Millisecond))
	checkImage(t, out, src, size)
	return src
}

// checkImage compares a copied-out volume image with the data copied in,
// followed by zeros up to size. Past the data it reads only the file's
// allocated ranges (SEEK_DATA/SEEK_HOLE): holes read as zeros.
func checkImage(tb testing.TB, path string, want []byte, size int64) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != size {
		tb.Fatalf("%s: size %v (%v), want %d", path, fi.Size(), err, size)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(f, got); err != nil {
		tb.Fatal(err)
	}
	if i := firstDiff(got, want); i >= 0 {
		tb.Fatalf("%s: differs from the source at byte %d", path, i)
	}
	const seekData, seekHole = 3, 4
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for off := int64(len(want)); off < size; {
		data, err := f.Seek(off, seekData)
		if errors.Is(err, syscall.ENXIO) {
			return // only holes from off to the end
		}
		if err != nil {
			tb.Fatal(err)
		}
		hole, err := f.Seek(data, seekHole)
		if err != nil {
			tb.Fatal(err)
		}
		for p := data; p < hole; {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), hole-p)], p)
			if err != nil && !errors.Is(err, io.EOF) {
				tb.Fatal(err)
			}
			if n == 0 {
				break
			}
			if !bytes.Equal(buf[:n], zero[:n]) {
				tb.Fatalf("%s: non-zero data past the copied image near byte %d", path, p)
			}
			p += int64(n)
		}
		off = hole
	}
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a); i += 4096 {
		j := min(i+4096, len(a))
		if !bytes.Equal(a[i:j], b[i:j]) {
			for k := i; k < j; k++ {
				if a[k] != b[k] {
					return k
				}
			}
		}
	}
	return -1
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
