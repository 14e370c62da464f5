package nbdserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// These tests drive the server with real NBD clients: nbdinfo (libnbd-bin)
// and Python libnbd (python3-libnbd), and qemu-io (qemu-utils). Missing tools fail the tests unless
// HLFS_SKIP_REAL_CLIENTS=1.

// needTool returns the path of a client tool or stops the test.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("HLFS_SKIP_REAL_CLIENTS") == "1" {
		t.Skipf("%s not installed (HLFS_SKIP_REAL_CLIENTS=1)", name)
	}
	t.Fatalf("%s not installed: apt-get install -y libnbd-bin qemu-utils, or set HLFS_SKIP_REAL_CLIENTS=1", name)
	return ""
}

// libnbdPython returns a Python interpreter that can import libnbd's nbd
// module (python3-libnbd installs it for the system interpreter, which a
// python3 earlier on PATH may not be).
func libnbdPython(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if p, err := exec.LookPath(py); err == nil && exec.Command(p, "-c", "import nbd").Run() == nil {
			return p
		}
	}
	if os.Getenv("HLFS_SKIP_REAL_CLIENTS") == "1" {
		t.Skip("python3-libnbd not installed (HLFS_SKIP_REAL_CLIENTS=1)")
	}
	t.Fatal("no python3 can import nbd: apt-get install -y python3-libnbd, or set HLFS_SKIP_REAL_CLIENTS=1")
	return ""
}

// runTool runs a client tool and returns its stdout; it fails the test if
// the tool fails.
func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	path := needTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\nstdout:\n%s\nstderr:\n%s", name, args, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// realClientServer serves "vol" (1 MiB, data at [64K, 128K) and the last
// 4 KiB) and "ro" (read-only 64 KiB) on loopback TCP.
func realClientServer(t *testing.T) (*testServer, *memExport) {
	t.Helper()
	cat := newCatalog()
	vol := newMemExport(1 << 20)
	vol.WriteAt(bytes.Repeat([]byte{7}, 64<<10), 64<<10, false)
	vol.WriteAt(bytes.Repeat([]byte{8}, 4096), 1<<20-4096, false)
	cat.add("vol", vol, ExportInfo{Description: "test volume", PreferredBlockSize: 4096})
	cat.add("ro", newMemExport(64<<10), ExportInfo{ReadOnly: true})
	return startServer(t, cat, Options{}), vol
}

// nbdinfoExport is the part of nbdinfo --json output the tests check.
type nbdinfoExport struct {
	Name         string   `json:"export-name"`
	Description  string   `json:"description"`
	Size         int64    `json:"export-size"`
	Contexts     []string `json:"contexts"`
	ReadOnly     bool     `json:"is_read_only"`
	CanFlush     bool     `json:"can_flush"`
	CanFUA       bool     `json:"can_fua"`
	CanTrim      bool     `json:"can_trim"`
	CanZero      bool     `json:"can_zero"`
	CanMultiConn bool     `json:"can_multi_conn"`
	CanCache     bool     `json:"can_cache"`
	CanDF        bool     `json:"can_df"`
	MinBlock     int64    `json:"block_size_minimum"`
	PrefBlock    int64    `json:"block_size_preferred"`
	MaxBlock     int64    `json:"block_size_maximum"`
}

type nbdinfoOutput struct {
	Protocol   string          `json:"protocol"`
	Structured bool            `json:"structured"`
	Exports    []nbdinfoExport `json:"exports"`
}

func parseNbdinfo(t *testing.T, out string) nbdinfoOutput {
	t.Helper()
	var o nbdinfoOutput
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		t.Fatalf("nbdinfo output: %v\n%s", err, out)
	}
	return o
}

func TestRealClientNbdinfo(t *testing.T) {
	ts, _ := realClientServer(t)
	o := parseNbdinfo(t, runTool(t, "nbdinfo", "--json", "nbd://"+ts.addr+"/vol"))
	if o.Protocol != "newstyle-fixed" || !o.Structured || len(o.Exports) != 1 {
		t.Fatalf("nbdinfo: %+v", o)
	}
	e := o.Exports[0]
	if e.Name != "vol" || e.Description != "test volume" || e.Size != 1<<20 || e.ReadOnly {
		t.Fatalf("export %+v", e)
	}
	if !e.CanFlush || !e.CanFUA || !e.CanTrim || !e.CanZero || !e.CanMultiConn || !e.CanCache || !e.CanDF {
		t.Fatalf("capabilities %+v", e)
	}
	if !slices.Contains(e.Contexts, metaBaseAlloc) {
		t.Fatalf("contexts %q", e.Contexts)
	}
	if e.MinBlock != 1 || e.PrefBlock != 4096 || e.MaxBlock != DefaultMaxPayload {
		t.Fatalf("block sizes %d/%d/%d", e.MinBlock, e.PrefBlock, e.MaxBlock)
	}

	o = parseNbdinfo(t, runTool(t, "nbdinfo", "--json", "nbd://"+ts.addr+"/ro"))
	e = o.Exports[0]
	if !e.ReadOnly || e.CanTrim || e.CanZero || e.CanFUA || !e.CanFlush || e.Size != 64<<10 {
		t.Fatalf("read-only export %+v", e)
	}
}

func TestRealClientNbdinfoList(t *testing.T) {
	ts, _ := realClientServer(t)
	o := parseNbdinfo(t, runTool(t, "nbdinfo", "--list", "--json", "nbd://"+ts.addr))
	var names []string
	for _, e := range o.Exports {
		names = append(names, e.Name)
		// LIST carries names only (descriptions would cost a Lookup per
		// export), so nbdinfo --list shows no description.
		if e.Name == "vol" && (e.Size != 1<<20 || !e.CanTrim) || e.Name == "ro" && !e.ReadOnly {
			t.Errorf("vol listed as %+v", e)
		}
	}
	if !slices.Equal(names, []string{"vol", "ro"}) {
		t.Fatalf("listed %q", names)
	}
}

func TestRealClientNbdinfoMap(t *testing.T) {
	ts, _ := realClientServer(t)
	out := runTool(t, "nbdinfo", "--map", "nbd://"+ts.addr+"/vol")
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		got = append(got, strings.Join(strings.Fields(line), " "))
	}
	want := []string{
		"0 65536 3 hole,zero",
		"65536 65536 0 data",
		fmt.Sprintf("131072 %d 3 hole,zero", 1<<20-4096-131072),
		fmt.Sprintf("%d 4096 0 data", 1<<20-4096),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("map\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRealClientQemuIO(t *testing.T) {
	ts, vol := realClientServer(t)
	out := runTool(t, "qemu-io", "-f", "raw", "nbd://"+ts.addr+"/vol",
		"-c", "write -P 0xab 0 64k",
		"-c", "read -P 0xab 0 64k",
		"-c", "discard 0 4k",
		"-c", "read -P 0 0 4k",
		"-c", "write -z 4k 4k",
		"-c", "flush",
		"-c", "write -f -P 1 8k 4k",
		"-c", "read -P 1 8k 4k",
		"-c", "read -P 0xab 12k 52k",
	)
	for _, want := range []string{
		"wrote 65536/65536 bytes at offset 0",
		"read 65536/65536 bytes at offset 0",
		"discard 4096/4096 bytes at offset 0",
		"read 4096/4096 bytes at offset 0",
		"wrote 4096/4096 bytes at offset 4096",
		"wrote 4096/4096 bytes at offset 8192",
		"read 4096/4096 bytes at offset 8192",
		"read 53248/53248 bytes at offset 12288",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("qemu-io output lacks %q", want)
		}
	}
	if strings.Contains(out, "failed") {
		t.Errorf("qemu-io reported a failure")
	}
	if t.Failed() {
		t.Fatalf("qemu-io output:\n%s", out)
	}

	want := append(make([]byte, 8192), bytes.Repeat([]byte{1}, 4096)...)
	want = append(want, bytes.Repeat([]byte{0xab}, 52<<10)...)
	if !bytes.Equal(vol.bytes(0, 64<<10), want) {
		t.Fatalf("export content differs from what qemu-io wrote")
	}
	var sawTrim, sawZero, sawFlush, sawFUA bool
	for _, c := range vol.calls() {
		switch {
		case c.op == "zero" && c.off == 0 && c.n == 4096 && c.punch:
			sawTrim = true
		case c.op == "zero" && c.off == 4096 && c.n == 4096:
			sawZero = true
		case c.op == "flush":
			sawFlush = true
		case c.op == "write" && c.off == 8192 && c.n == 4096 && c.fua:
			sawFUA = true
		}
	}
	if !sawTrim || !sawZero || !sawFlush || !sawFUA {
		t.Fatalf("export calls: trim %v zero %v flush %v fua %v\n%+v", sawTrim, sawZero, sawFlush, sawFUA, vol.calls())
	}
	if vol.allocated(0) {
		t.Fatalf("discard did not deallocate")
	}
}

func TestRealClientLibnbdBadInput(t *testing.T) {
	ts, _ := realClientServer(t)
	// libnbd with strict mode off passes bad requests through to the server;
	// each must fail with the right errno and leave the connection usable.
	script := `
import errno, sys, nbd
h = nbd.NBD()
h.set_strict_mode(0)
h.connect_uri(sys.argv[1])
def expect(name, f):
    try:
        f()
        print(name, "ok")
    except nbd.Error as e:
        print(name, errno.errorcode.get(e.errnum, e.errnum))
    h.pread(512, 0)
size = h.get_size()
expect("read-past-end", lambda: h.pread(4096, size - 100))
expect("write-past-end", lambda: h.pwrite(b"x" * 4096, size - 100))
expect("trim-past-end", lambda: h.trim(4096, size - 100))
expect("zero-past-end", lambda: h.zero(4096, size - 100))
expect("read-bad-flag", lambda: h.pread(512, 0, nbd.CMD_FLAG_REQ_ONE))
expect("zero-fast", lambda: h.zero(512, 0, nbd.CMD_FLAG_FAST_ZERO))
expect("read-too-big", lambda: h.pread(64 << 20, 0))
expect("zero-length-read", lambda: h.pread(0, 0))
print("final", bytes(h.pread(4, 65536)).hex())
`
	out := runTool(t, libnbdPython(t), "-c", script, "nbd://"+ts.addr+"/vol")
	want := []string{
		"read-past-end EINVAL",
		"write-past-end ENOSPC",
		"trim-past-end EINVAL",
		"zero-past-end ENOSPC",
		"read-bad-flag EINVAL",
		"zero-fast EINVAL",
		"read-too-big EOVERFLOW",
		"zero-length-read ok",
		"final 07070707",
	}
	if got := strings.Split(strings.TrimSpace(out), "\n"); !slices.Equal(got, want) {
		t.Fatalf("libnbd output\n%s\nwant\n%s", out, strings.Join(want, "\n"))
	}
}
