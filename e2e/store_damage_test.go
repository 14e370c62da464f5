package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The real binary on a store that holds more than volumes (issue 10,
// items 2 and 3): stray files in the store's root, a volume whose
// superblock was cut short, and a mistyped --store.

// hlfsTry runs one hlfs subcommand on s's store (tryHLFS) and returns its
// combined output and exit code, without failing the test.
func (s *Server) hlfsTry(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := s.tryHLFS(args...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &ee):
		return out, ee.ExitCode()
	}
	t.Fatalf("hlfs %s: %v", strings.Join(args, " "), err)
	return "", -1
}

// TestStrayEntriesInStoreRoot: a README and a filer's .snapshot folder in
// the store's root are skipped with a warning by ls and by serve of every
// volume; a mistyped --store is an error and creates nothing.
func TestStrayEntriesInStoreRoot(t *testing.T) {
	Begin(t, "qemu-io")
	requireHLFS(t)
	s := newServer(t, Volume{Name: "vol", Size: 4 << 20})
	s.Exports = []string{} // every volume
	if err := os.WriteFile(filepath.Join(s.Dir, "README"), []byte("volumes of the lab\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.Dir, ".snapshot", "hourly.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, code := s.hlfsTry(t, "ls")
	if code != 0 || !strings.Contains(out, "\nvol ") || !strings.Contains(out, "warning: ignoring README") ||
		!strings.Contains(out, "warning: ignoring .snapshot") {
		t.Errorf("ls with stray entries: exit %d\n%s", code, out)
	}
	s.Start()
	qemuIO(t, s.URI("vol"), "write -P 7 0 64k", "flush", "read -P 7 0 64k")
	if names := exportNames(t, s.Addr); strings.Join(names, ",") != "vol" {
		t.Errorf("exports with stray entries: %q", names)
	}
	s.Stop()
	// Serve lists the store when a client asks for the export list.
	if log := s.logTail(); !strings.Contains(log, "ignoring README in the store: a file, not a volume") {
		t.Errorf("serve did not warn about README:\n%s", log)
	}

	typo := filepath.Join(t.TempDir(), "typo")
	cmd := exec.Command(s.bin, "--store", typo, "ls")
	b, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(b), "store "+typo+" does not exist") {
		t.Errorf("ls on a missing store: %v\n%s", err, b)
	}
	if _, err := os.Stat(typo); !os.IsNotExist(err) {
		t.Errorf("ls on a missing store created it: %v", err)
	}
}

// TestDamagedSuperblock cuts the superblock of a volume holding data short:
// ls shows it damaged, serve of every volume serves the others and warns,
// fsck reports it with the repair, fsck --repair rebuilds it and the data
// reads back; rm removes a damaged volume.
func TestDamagedSuperblock(t *testing.T) {
	Begin(t, "qemu-io")
	requireHLFS(t)
	s := newServer(t, Volume{Name: "a", Size: 4 << 20}, Volume{Name: "c", Size: 8 << 20}, Volume{Name: "d", Size: 4 << 20})
	s.Exports = []string{}
	s.Start()
	qemuIO(t, s.URI("c"), "write -P 0x3c 1M 2M", "flush")
	qemuIO(t, s.URI("d"), "write -P 0x3d 0 64k", "flush")
	s.Stop()
	for _, v := range []string{"c", "d"} {
		if err := os.Truncate(filepath.Join(s.Dir, v, "super"), 10); err != nil {
			t.Fatal(err)
		}
	}

	out, code := s.hlfsTry(t, "ls")
	if code != 1 || !strings.Contains(out, "\nc ") || !strings.Contains(out, "damaged") || !strings.Contains(out, "hlfs fsck --repair c") {
		t.Errorf("ls with a damaged volume: exit %d\n%s", code, out)
	}
	s.Start()
	qemuIO(t, s.URI("a"), "write -P 1 0 4k", "flush")
	if _, err := exec.Command("qemu-io", "-f", "raw", s.URI("c"), "-c", "read 0 4k").CombinedOutput(); err == nil {
		t.Error("a damaged volume was served")
	}
	s.Stop()
	if log := s.logTail(); !strings.Contains(log, "not serving c: volume c is damaged") {
		t.Errorf("serve did not warn about the damaged volume:\n%s", log)
	}

	out, code = s.hlfsTry(t, "fsck", "c")
	if code != 1 || !strings.Contains(out, "c/super is 10 bytes") || !strings.Contains(out, "hlfs fsck --repair c") {
		t.Errorf("fsck of the damaged volume: exit %d\n%s", code, out)
	}
	out = s.hlfs("fsck", "--repair", "c")
	if !strings.Contains(out, "rebuilt the superblock") || !strings.Contains(out, "size 8 MiB") || !strings.HasSuffix(out, "c: ok\n") {
		t.Errorf("fsck --repair:\n%s", out)
	}
	t.Logf("hlfs fsck --repair c:\n%s", out)
	if out := s.hlfs("rm", "d"); out != "removed d\n" {
		t.Errorf("rm of a damaged volume: %q", out)
	}
	s.Start()
	qemuIORO(t, s.URI("c"), "read -P 0x3c 1M 2M", "read -P 0 0 1M", "read -P 0 3M 5M")
	qemuIORO(t, s.URI("a"), "read -P 1 0 4k")
	s.Stop()
	s.Fsck("c")
}
