package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hlfs/hlfs/lfs"
)

// nbdEPERM is NBD_EPERM.
const nbdEPERM = 1

func TestSnapshotCreate(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	writeVolume(t, dir, "vm1", 0, fill("one", 4096))
	if out := mustHLFS(t, store, "snapshot", "create", "vm1@s1"); out != "created snapshot vm1@s1\n" {
		t.Errorf("stdout %q", out)
	}
	writeVolume(t, dir, "vm1", 0, fill("two", 4096))

	v, err := lfs.Open(dirStore(t, dir), "vm1", lfs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	view, err := v.SnapshotView("s1")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4096)
	if err := view.ReadAt(got, 0); err != nil || !bytes.Equal(got, fill("one", 4096)) {
		t.Errorf("the snapshot does not hold the data written before it (%v)", err)
	}
	if live := readVolume(t, dir, "vm1"); !bytes.Equal(live[:4096], fill("two", 4096)) {
		t.Error("the volume lost the write after the snapshot")
	}
	if info := statVolume(t, dir, "vm1"); info.Owner != nil {
		t.Errorf("vm1 still owned after snapshot create: %+v", info.Owner)
	}
	mustHLFS(t, store, "fsck", "vm1")
}

func TestSnapshotCreateErrors(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	wantError(t, hlfs(t, store, "snapshot", "create", "vm1@s1"), 1, "snapshot vm1@s1 already exists")
	wantError(t, hlfs(t, store, "snapshot", "create", "nope@s1"), 1, `no volume "nope" in store `+store)

	// Held by a process without an admin socket: refused, naming it.
	v, err := lfs.Open(dirStore(t, dir), "vm1", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	wantError(t, hlfs(t, store, "snapshot", "create", "vm1@s2"), 1,
		fmt.Sprintf("vm1 is in use by pid %d", os.Getpid()), "no admin socket", "stop it first")
}

// The scenario: a snapshot of a served volume, taken through the
// admin socket, holds every acknowledged write, is exported read-only at once
// and goes away with snapshot rm.
func TestSnapshotCreateWhileServed(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "4M")
	adminSock := filepath.Join(t.TempDir(), "admin.sock")
	addr, stderr, stop := startServe(t, store, "every volume", "--listen", "127.0.0.1:0", "--admin-socket", adminSock)

	c := dialNBD(t, "tcp", addr)
	if _, errType := c.goExport("vm1"); errType != 0 {
		t.Fatalf("GO vm1: %#x", errType)
	}
	info := statVolume(t, dir, "vm1")
	if info.Owner == nil || info.Owner.Admin != adminSock {
		t.Fatalf("the owner lock does not name the admin socket %s: %+v", adminSock, info.Owner)
	}
	if fi, err := os.Lstat(adminSock); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket: %v, %v", fi, err)
	}
	before := fill("before", 8192)
	if errno, _ := c.request(nbdCmdWrite, 0, len(before), before); errno != 0 {
		t.Fatalf("WRITE: errno %d", errno)
	}
	// Acknowledged, not flushed: the snapshot holds it all the same.
	if out := mustHLFS(t, store, "snapshot", "create", "vm1@s1"); out != "created snapshot vm1@s1\n" {
		t.Errorf("snapshot create printed %q", out)
	}
	after := fill("after", 4096)
	if errno, _ := c.request(nbdCmdWrite, 4096, len(after), after); errno != 0 {
		t.Fatalf("WRITE: errno %d", errno)
	}
	if errno, _ := c.request(nbdCmdWrite, 1<<20, len(after), after); errno != 0 {
		t.Fatalf("WRITE: errno %d", errno)
	}
	wantError(t, hlfs(t, store, "snapshot", "create", "vm1@s1"), 1, "snapshot vm1@s1 already exists")
	wantError(t, hlfs(t, store, "snapshot", "create", "vm1@bad/name"), 1, "invalid snapshot name")
	if out := mustHLFS(t, store, "snapshot", "ls", "vm1"); !strings.Contains(out, "\ns1 ") {
		t.Errorf("snapshot ls while served:\n%s", out)
	}

	// The snapshot is an export now, read-only, with the old data.
	s := dialNBD(t, "tcp", addr)
	if names := s.list(); strings.Join(names, ",") != "vm1,vm1@s1" {
		t.Errorf("LIST = %q", names)
	}
	size, errType := s.goExport("vm1@s1")
	if errType != 0 || size != 4<<20 {
		t.Fatalf("GO vm1@s1: size %d, error %#x", size, errType)
	}
	errno, got := s.request(nbdCmdRead, 0, 8192, nil)
	if errno != 0 || !bytes.Equal(got, before) {
		t.Errorf("the snapshot reads the data of after it (errno %d)", errno)
	}
	if errno, got := s.request(nbdCmdRead, 1<<20, 4096, nil); errno != 0 || !isZero(got) {
		t.Errorf("the snapshot reads a write made after it (errno %d)", errno)
	}
	if errno, _ := s.request(nbdCmdWrite, 0, 4096, fill("x", 4096)); errno != nbdEPERM {
		t.Errorf("WRITE to the snapshot: errno %d, want EPERM", errno)
	}
	if errno, _ := s.request(nbdCmdFlush, 0, 0, nil); errno != 0 {
		t.Errorf("FLUSH of the snapshot: errno %d", errno)
	}
	// The volume reads the new data.
	if errno, got := c.request(nbdCmdRead, 0, 8192, nil); errno != 0 ||
		!bytes.Equal(got[:4096], before[:4096]) || !bytes.Equal(got[4096:], after) {
		t.Errorf("the volume does not read its latest writes (errno %d)", errno)
	}

	// A rollback is refused while served.
	host, _ := os.Hostname()
	wantError(t, hlfs(t, store, "snapshot", "rollback", "vm1@s1"), 1,
		fmt.Sprintf("cannot roll back vm1 while it is served by pid %d on host %s; stop serving it first", os.Getpid(), host))

	// Removing it through the admin socket unexports it.
	if out := mustHLFS(t, store, "snapshot", "rm", "vm1@s1"); out != "removed snapshot vm1@s1\n" {
		t.Errorf("snapshot rm printed %q", out)
	}
	wantError(t, hlfs(t, store, "snapshot", "rm", "vm1@s1"), 1, `no snapshot "s1" of volume vm1`)
	n := dialNBD(t, "tcp", addr)
	if names := n.list(); strings.Join(names, ",") != "vm1" {
		t.Errorf("LIST after rm = %q", names)
	}
	if _, errType := n.goExport("vm1@s1"); errType == 0 {
		t.Error("GO of a removed snapshot succeeded")
	}
	for _, cl := range []*nbdClient{c, s, n} {
		cl.conn.Close()
	}

	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, stderr.String())
	}
	log := stderr.String()
	for _, want := range []string{"admin socket " + adminSock, "created snapshot vm1@s1", "removed snapshot vm1@s1"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "level=ERROR") {
		t.Errorf("errors logged:\n%s", log)
	}
	if _, err := os.Lstat(adminSock); !os.IsNotExist(err) {
		t.Errorf("admin socket left behind: %v", err)
	}
	live := readVolume(t, dir, "vm1")
	if !bytes.Equal(live[4096:8192], after) || !bytes.Equal(live[1<<20:1<<20+4096], after) {
		t.Error("writes lost at shutdown")
	}
	mustHLFS(t, store, "fsck", "vm1")
}

// After serve stopped, the snapshot it took is in the store.
func TestSnapshotCreateWhileServedIsDurable(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	addr, _, stop := startServe(t, store, "vm1", "--listen", "127.0.0.1:0",
		"--admin-socket", filepath.Join(t.TempDir(), "a.sock"), "vm1")
	c := dialNBD(t, "tcp", addr)
	c.goExport("vm1")
	data := fill("snap", 4096)
	if errno, _ := c.request(nbdCmdWrite, 0, len(data), data); errno != 0 {
		t.Fatalf("WRITE: errno %d", errno)
	}
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	// Served by name: the new snapshot is not an export.
	l := dialNBD(t, "tcp", addr)
	if names := l.list(); strings.Join(names, ",") != "vm1" {
		t.Errorf("LIST = %q", names)
	}
	l.conn.Close()
	c.conn.Close()
	if code := stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	snaps, err := lfs.ListSnapshots(dirStore(t, dir), "vm1")
	if err != nil || len(snaps) != 1 || snaps[0].Name != "s1" {
		t.Fatalf("snapshots after serve: %+v, %v", snaps, err)
	}
	mustHLFS(t, store, "clone", "vm1@s1", "c1")
	if got := readVolume(t, dir, "c1"); !bytes.Equal(got[:4096], data) {
		t.Error("the snapshot lacks the write acknowledged before it")
	}
}
