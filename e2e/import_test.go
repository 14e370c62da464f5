package e2e

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportStreams drives `hlfs import` of the real binary with what used
// to wipe a volume or be misread (issue 10, item 1): a shell pipe into
// `import -`, /dev/urandom into a volume holding data, and a directory.
// What the volume holds afterwards is read back over NBD.
func TestImportStreams(t *testing.T) {
	Begin(t, "qemu-io")
	requireHLFS(t)
	s := newServer(t, Volume{Name: "vol", Size: 4 << 20})
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	data := make([]byte, 3<<20+100)
	rand.Read(data)
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}

	// A pipe into a new volume: --size, since a stream has no length.
	sh := exec.Command("sh", "-c", `cat "$1" | "$2" --store "$3" import - piped --size 8M`, "sh", img, s.bin, s.StoreURI())
	if out, err := sh.CombinedOutput(); err != nil || string(out) != "created piped: 8 MiB, 4 KiB blocks\n" {
		t.Fatalf("import - from a pipe: %v\n%s", err, out)
	}
	exported := filepath.Join(dir, "exported")
	s.hlfs("export", "piped", exported)
	got, err := os.ReadFile(exported)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 8<<20 || !bytes.Equal(got[:len(data)], data) || strings.Trim(string(got[len(data):]), "\x00") != "" {
		t.Error("the volume made from a pipe does not read as what went through it")
	}

	// /dev/urandom into a volume holding data: filled, and a failure that
	// says the source was longer; never zeros with exit 0.
	s.Start()
	qemuIO(t, s.URI("vol"), "write -P 0x61 0 4M", "flush")
	s.Stop()
	out, code := s.hlfsTry(t, "import", "/dev/urandom", "vol")
	if code != 1 || !strings.Contains(out, "/dev/urandom is longer than volume vol") {
		t.Errorf("import /dev/urandom: exit %d\n%s", code, out)
	}
	s.hlfs("export", "vol", exported)
	if got, err = os.ReadFile(exported); err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(got); off += 4096 {
		if blk := got[off : off+4096]; bytes.Count(blk, []byte{0}) == len(blk) || bytes.Count(blk, []byte{0x61}) == len(blk) {
			t.Fatalf("after importing /dev/urandom the block at %d reads as zeros or as before", off)
		}
	}

	// A directory is refused, and nothing is created.
	out, code = s.hlfsTry(t, "import", dir, "fromdir")
	if code != 1 || !strings.Contains(out, "it is a directory") || strings.Count(out, "\n") != 1 {
		t.Errorf("import of a directory: exit %d\n%s", code, out)
	}
	if out, code := s.hlfsTry(t, "info", "fromdir"); code != 1 || !strings.Contains(out, `no volume "fromdir"`) {
		t.Errorf("a refused import left a volume: %s", out)
	}
	s.Fsck("vol")
	s.Fsck("piped")
}
