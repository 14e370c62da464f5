package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

type snapshotLsEntry struct {
	Name           string   `json:"name"`
	Parent         string   `json:"parent"`
	Created        string   `json:"created"`
	ExclusiveBytes int64    `json:"exclusive_bytes"`
	Clones         []string `json:"clones"`
	Head           bool     `json:"head"`
}

func snapshotLs(tb testing.TB, s *Server, vol string) []snapshotLsEntry {
	tb.Helper()
	out := s.hlfs("snapshot", "ls", vol, "--json")
	var ls []snapshotLsEntry
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		tb.Fatalf("hlfs snapshot ls %s --json: %v\n%s", vol, err, out)
	}
	return ls
}

func findSnapshot(ls []snapshotLsEntry, name string) (snapshotLsEntry, bool) {
	for _, e := range ls {
		if e.Name == name {
			return e, true
		}
	}
	return snapshotLsEntry{}, false
}

// nbdWriteScript connects with libnbd in non-strict mode, so that the
// client does not refuse writes to a read-only export itself, and sends
// WRITE, WRITE_ZEROES and TRIM: each must fail with the server's EPERM.
const nbdWriteScript = `
import errno, sys, nbd
h = nbd.NBD()
h.set_strict_mode(0)
h.connect_uri(sys.argv[1])
print("read-only", h.is_read_only())
for name, op in (("write", lambda: h.pwrite(b"x" * 4096, 0)),
                 ("zero", lambda: h.zero(4096, 0)),
                 ("trim", lambda: h.trim(4096, 0))):
    try:
        op()
        print(name, "OK")
    except nbd.Error as e:
        code = e.errno if isinstance(e.errno, int) else getattr(errno, str(e.errno), -1)
        print(name, "EPERM" if code == errno.EPERM else "ERR", e)
h.shutdown()
`

// TestSnapshotClients checks snapshots and clones with real NBD clients and
// no guest: a live snapshot through the server's admin socket, the
// read-only export VOLUME@SNAPSHOT (qemu-io, libnbd, nbdinfo), the exclusive
// bytes `snapshot ls` reports after an overwrite, and a clone that copies
// out (nbdcopy) equal to its snapshot.
func TestSnapshotClients(t *testing.T) {
	Begin(t, "qemu-io", "nbdcopy")
	requireHLFS(t)
	py := Python(t)
	const size = 128 << 20
	s := newServeAllServer(t, Volume{Name: "vm1", Size: size})
	vm1, snap := s.URI("vm1"), s.URI("vm1@s1")

	qemuIO(t, vm1,
		"write -P 0x11 0 4M",
		"write -P 0x22 8M 1M",
		"write -P 0x23 127M 1M",
	)
	t.Logf("%s", strings.TrimSpace(s.hlfs("snapshot", "create", "vm1@s1")))
	if !s.Running() || !strings.Contains(s.logText(), `msg="created snapshot vm1@s1"`) {
		t.Fatalf("the serving process did not take the snapshot (admin socket); log:\n%s", s.logTail())
	}
	if e, ok := findSnapshot(snapshotLs(t, s, "vm1"), "s1"); !ok || e.ExclusiveBytes != 0 {
		t.Errorf("snapshot ls right after create: %+v (found %v), want s1 with 0 exclusive bytes", e, ok)
	}
	qemuIO(t, vm1,
		"write -P 0x33 0 4M", // overwrites what s1 holds
		"write -P 0x44 16M 1M",
	)

	// The snapshot reads as before the overwrite; vm1 as after.
	qemuIO(t, vm1,
		"read -P 0x33 0 4M",
		"read -P 0x22 8M 1M",
		"read -P 0x44 16M 1M",
	)
	qemuIORO(t, snap,
		"read -P 0x11 0 4M",
		"read -P 0x22 8M 1M",
		"read -P 0 16M 1M",
		"read -P 0x23 127M 1M",
	)

	// Writes to the snapshot: qemu-io will not even open it read-write, and
	// a client that sends them anyway gets EPERM from the server.
	if out, err := exec.Command("qemu-io", "-f", "raw", snap, "-c", "write -P 0x55 0 4k").CombinedOutput(); err == nil {
		t.Errorf("qemu-io opened %s read-write and wrote:\n%s", snap, out)
	} else {
		t.Logf("qemu-io write to the snapshot: %s", strings.TrimSpace(string(out)))
	}
	pyOut := run(t, py, "-c", nbdWriteScript, snap)
	t.Logf("libnbd (non-strict) to vm1@s1:\n%s", strings.TrimSpace(pyOut))
	for _, want := range []string{"read-only True", "write EPERM", "zero EPERM", "trim EPERM"} {
		if !strings.Contains(pyOut, want+"\n") && !strings.Contains(pyOut, want+" ") {
			t.Errorf("libnbd: want %q in:\n%s", want, pyOut)
		}
	}
	qemuIORO(t, snap, "read -P 0x11 0 4M") // the attempts changed nothing

	// nbdinfo: the snapshot export is read-only, the volume writable, both listed.
	info := nbdinfo(t, snap)
	if len(info.Exports) != 1 || !info.Exports[0].ReadOnly || info.Exports[0].Size != size {
		t.Errorf("nbdinfo --json %s: %+v, want one read-only export of %d bytes", snap, info.Exports, size)
	}
	if info := nbdinfo(t, vm1); len(info.Exports) != 1 || info.Exports[0].ReadOnly {
		t.Errorf("nbdinfo --json %s: %+v, want a writable export", vm1, info.Exports)
	}
	if names := exportNames(t, s.Addr); !contains(names, "vm1") || !contains(names, "vm1@s1") {
		t.Errorf("nbdinfo --list: %v, want vm1 and vm1@s1", names)
	}

	// snapshot ls: the overwrite left 4 MiB that only s1 holds.
	e, ok := findSnapshot(snapshotLs(t, s, "vm1"), "s1")
	if !ok || e.ExclusiveBytes <= 0 || e.ExclusiveBytes > 4<<20 {
		t.Errorf("snapshot ls after the overwrite: %+v (found %v), want s1 with 0 < exclusive bytes <= 4 MiB", e, ok)
	}
	t.Logf("s1 after a 4 MiB overwrite: %d exclusive bytes", e.ExclusiveBytes)

	// Clone while vm1 is served; the serve-everything server exports
	// volumes that existed when it started, so restart it to export c1.
	t.Logf("%s", strings.TrimSpace(s.hlfs("clone", "vm1@s1", "c1")))
	if e, _ := findSnapshot(snapshotLs(t, s, "vm1"), "s1"); !contains(e.Clones, "c1") {
		t.Errorf("snapshot ls: s1 clones %v, want c1", e.Clones)
	}
	s.Restart()
	dir := t.TempDir()
	snapImg, cloneImg := filepath.Join(dir, "snap.img"), filepath.Join(dir, "clone.img")
	run(t, "nbdcopy", snap, snapImg)
	run(t, "nbdcopy", s.URI("c1"), cloneImg)
	compareFiles(t, snapImg, cloneImg)

	// Writing the clone changes neither the snapshot nor vm1.
	qemuIO(t, s.URI("c1"), "write -P 0x66 0 1M", "read -P 0x66 0 1M", "read -P 0x11 1M 3M")
	qemuIORO(t, snap, "read -P 0x11 0 4M")
	qemuIO(t, vm1, "read -P 0x33 0 4M")
	s.Stop()
	s.Fsck("vm1")
	s.Fsck("c1")
}

// qemuIORO is qemuIO on a read-only open (qemu-io -r).
func qemuIORO(tb testing.TB, uri string, cmds ...string) {
	tb.Helper()
	args := []string{"-r", "-f", "raw", uri}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("qemu-io", args...).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("Pattern verification failed")) || bytes.Contains(out, []byte("failed:")) {
		tb.Fatalf("qemu-io -r %s: %v\n%s", strings.Join(cmds, "; "), err, out)
	}
}

// compareFiles fails tb unless the two files have equal contents.
func compareFiles(tb testing.TB, a, b string) {
	tb.Helper()
	da, err := os.ReadFile(a)
	if err != nil {
		tb.Fatal(err)
	}
	db, err := os.ReadFile(b)
	if err != nil {
		tb.Fatal(err)
	}
	if len(da) != len(db) {
		tb.Fatalf("%s is %d bytes, %s %d", a, len(da), b, len(db))
	}
	if i := firstDiff(da, db); i >= 0 {
		tb.Fatalf("%s and %s differ at byte %d", a, b, i)
	}
}
