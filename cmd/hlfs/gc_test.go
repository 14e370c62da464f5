package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hlfs/hlfs/internal/admin"
	"github.com/hlfs/hlfs/lfs"
)

// segmentFiles returns the bytes and the number of the segment objects of
// a volume in a file store; a new volume has none.
func segmentFiles(t *testing.T, dir, name string) (int64, int) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, name, "seg"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n, len(ents)
}

// garbageVolume creates an 8 MiB volume vm1 with 1 MiB segments and writes
// 6 MiB, then overwrites 5 MiB of it, each write in its own open: 5 MiB of
// garbage spread over several segments, some empty, some partly live. It
// returns the volume's contents.
func garbageVolume(t *testing.T, dir string) []byte {
	t.Helper()
	if err := lfs.Create(dirStore(t, dir), "vm1", lfs.Config{Size: 8 << 20, SegmentSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	model := make([]byte, 8<<20)
	for _, w := range []struct {
		off  int
		data []byte
	}{
		{0, fill("first", 6<<20)},
		{0, fill("second", 4<<20)},
		{1 << 20, fill("third", 1<<20)},
	} {
		writeVolume(t, dir, "vm1", int64(w.off), w.data)
		copy(model[w.off:], w.data)
	}
	return model
}

// gcLine matches the summary gc prints.
var gcLine = regexp.MustCompile(`^gc vm1: (\d+) segments? cleaned, (\d+) deleted, ([0-9.]+ [KMG]?i?B) copied, ([0-9.]+ [KMG]?i?B) freed\n$`)

// checkSelective checks the stats of a run with --max-utilization 0.3 on
// a garbageVolume: it cleaned something, and only segments at most 30% live.
func checkSelective(t *testing.T, st lfs.GCStats) {
	t.Helper()
	if st.SegmentsDeleted == 0 || st.BytesDeleted == 0 {
		t.Errorf("gc --max-utilization 0.3 deleted nothing: %+v", st)
	}
	if st.SegmentsCleaned > 0 && float64(st.BytesCopied) > 0.3*float64(st.SegmentsCleaned)*(1<<20) {
		t.Errorf("gc --max-utilization 0.3 copied %d bytes out of %d segments of 1 MiB", st.BytesCopied, st.SegmentsCleaned)
	}
}

func TestGC(t *testing.T) {
	store, dir := testStore(t)
	model := garbageVolume(t, dir)
	before, _ := segmentFiles(t, dir, "vm1")

	// Only the emptiest segments first.
	r := hlfs(t, store, "gc", "vm1", "--max-utilization", "0.3", "--json")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("gc --json: exit %d stderr %q", r.code, r.stderr)
	}
	var first lfs.GCStats
	if err := json.Unmarshal([]byte(r.stdout), &first); err != nil {
		t.Fatalf("gc --json printed %q: %v", r.stdout, err)
	}
	checkSelective(t, first)
	middle, _ := segmentFiles(t, dir, "vm1")
	if middle >= before {
		t.Errorf("segments hold %d bytes after gc, %d before", middle, before)
	}

	// Then every segment worth it: what the first run left is copied now.
	r = hlfs(t, store, "gc", "vm1")
	m := gcLine.FindStringSubmatch(r.stdout)
	if r.code != 0 || r.stderr != "" || m == nil {
		t.Fatalf("gc: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if cleaned, _ := strconv.Atoi(m[1]); cleaned == 0 || m[3] == "0 B" {
		t.Errorf("the default --max-utilization cleaned nothing the first run left: %q", r.stdout)
	}
	after, n := segmentFiles(t, dir, "vm1")
	// 6 MiB live; record headers and the small segments of each open are
	// the rest.
	if after >= middle || after > 6<<20+6<<20/20 {
		t.Errorf("segments hold %d bytes in %d objects after gc for 6 MiB live (%d before, %d in between)", after, n, before, middle)
	}
	if got := readVolume(t, dir, "vm1"); !bytes.Equal(got, model) {
		t.Error("the volume reads differently after gc")
	}
	if info := statVolume(t, dir, "vm1"); info.Owner != nil {
		t.Errorf("vm1 still owned after gc: %+v", info.Owner)
	}
	mustHLFS(t, store, "fsck", "vm1")

	// Nothing left to copy.
	var last lfs.GCStats
	if err := json.Unmarshal([]byte(mustHLFS(t, store, "gc", "vm1", "--json", "--rate", "0")), &last); err != nil {
		t.Fatal(err)
	}
	if last.SegmentsCleaned != 0 || last.BytesCopied != 0 {
		t.Errorf("a second full gc copied again: %+v", last)
	}
	if got := readVolume(t, dir, "vm1"); !bytes.Equal(got, model) {
		t.Error("the volume reads differently after the last gc")
	}
}

// A snapshot holds what it reads: gc keeps it until the snapshot goes.
func TestGCKeepsSnapshotData(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "4M")
	writeVolume(t, dir, "vm1", 0, fill("old", 2<<20))
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	writeVolume(t, dir, "vm1", 0, fill("new", 2<<20))
	mustHLFS(t, store, "gc", "vm1")
	v, err := lfs.Open(dirStore(t, dir), "vm1", lfs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	view, err := v.SnapshotView("s1")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2<<20)
	if err := view.ReadAt(got, 0); err != nil || !bytes.Equal(got, fill("old", 2<<20)) {
		t.Errorf("the snapshot lost its data to gc (%v)", err)
	}
	view.Close()
	v.Close()
	withSnap, _ := segmentFiles(t, dir, "vm1")
	if withSnap < 4<<20 {
		t.Errorf("segments hold %d bytes for 4 MiB that the volume and its snapshot read", withSnap)
	}

	mustHLFS(t, store, "snapshot", "rm", "vm1@s1")
	mustHLFS(t, store, "gc", "vm1")
	if after, _ := segmentFiles(t, dir, "vm1"); after > withSnap-(2<<20)+(2<<20)/10 {
		t.Errorf("segments hold %d bytes after the snapshot went and gc ran, %d before", after, withSnap)
	}
	if got := readVolume(t, dir, "vm1"); !bytes.Equal(got[:2<<20], fill("new", 2<<20)) {
		t.Error("the volume reads differently after gc")
	}
	mustHLFS(t, store, "fsck", "vm1")
}

func TestGCErrors(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	wantError(t, hlfs(t, store, "gc"), 2, "gc: missing VOLUME", "'hlfs help gc'")
	wantError(t, hlfs(t, store, "gc", "vm1", "vm2"), 2, `gc: unexpected argument "vm2"`)
	wantError(t, hlfs(t, store, "gc", "nope"), 1, `no volume "nope" in store `+store)
	wantError(t, hlfs(t, store, "gc", "a/b"), 1, `invalid volume name "a/b"`)
	wantError(t, hlfs(t, store, "gc", "vm1@s1"), 1, "vm1@s1 is a snapshot, not a volume")
	for _, bad := range []string{"0", "1.5", "-0.5", "NaN"} {
		wantError(t, hlfs(t, store, "gc", "vm1", "--max-utilization", bad), 2,
			"gc: --max-utilization", "want a fraction above 0 and at most 1")
	}
	wantError(t, hlfs(t, store, "gc", "vm1", "--max-utilization", "most"), 2, `invalid value "most" for --max-utilization`)
	wantError(t, hlfs(t, store, "gc", "vm1", "--rate", "fast"), 2, `gc: --rate: invalid size "fast"`)
	wantError(t, hlfs(t, store, "gc", "vm1", "--rate", "-1M"), 2, "must be positive")
	wantError(t, hlfs(t, store, "gc", "vm1", "--nope"), 2, "gc: unknown flag --nope")
	// A bound and 1 are fine.
	if out := mustHLFS(t, store, "gc", "vm1", "--rate", "1G", "--max-utilization", "1"); !gcLine.MatchString(out) {
		t.Errorf("gc printed %q", out)
	}

	// Held by a process without an admin socket: refused, naming it.
	v, err := lfs.Open(dirStore(t, dir), "vm1", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	host, _ := os.Hostname()
	wantError(t, hlfs(t, store, "gc", "vm1"), 1,
		fmt.Sprintf("vm1 is in use by pid %d on host %s, which has no admin socket to take gc requests; stop it first", os.Getpid(), host))
}

// gc of a served volume: the serving process cleans it through its admin
// socket while a client keeps writing, and the client reads what it wrote.
func TestGCWhileServed(t *testing.T) {
	store, dir := testStore(t)
	model := garbageVolume(t, dir)
	before, _ := segmentFiles(t, dir, "vm1")
	adminSock := filepath.Join(t.TempDir(), "admin.sock")
	// No background cleaning: what is cleaned is what gc asked for.
	addr, stderr, stop := startServe(t, store, "vm1", "--listen", "127.0.0.1:0", "--admin-socket", adminSock, "--no-gc", "vm1")
	c := dialNBD(t, "tcp", addr)
	if _, errType := c.goExport("vm1"); errType != 0 {
		t.Fatalf("GO vm1: %#x", errType)
	}
	write := func(off int, data []byte) {
		t.Helper()
		for i := 0; i < len(data); i += 256 << 10 {
			chunk := data[i:min(i+256<<10, len(data))]
			if errno, _ := c.request(nbdCmdWrite, int64(off+i), len(chunk), chunk); errno != 0 {
				t.Fatalf("WRITE at %d: errno %d", off+i, errno)
			}
		}
		copy(model[off:], data)
	}
	write(6<<20, fill("served", 1<<20))

	// Through the socket, with the options: only the emptiest segments.
	r := hlfs(t, store, "gc", "vm1", "--max-utilization", "0.3", "--json")
	var first lfs.GCStats
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &first) != nil {
		t.Fatalf("gc --json of a served volume: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	checkSelective(t, first)

	// A full run while the client overwrites what gc copies.
	done := make(chan result, 1)
	go func() { done <- hlfs(t, store, "gc", "vm1") }()
	write(3<<20, fill("during", 2<<20))
	r = <-done
	m := gcLine.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil || r.stderr != "" {
		t.Fatalf("gc of a served volume: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if m[4] == "0 B" {
		t.Errorf("gc of a served volume freed nothing: %q", r.stdout)
	}
	for off := 0; off < len(model); off += 1 << 20 {
		if errno, got := c.request(nbdCmdRead, int64(off), 1<<20, nil); errno != 0 || !bytes.Equal(got, model[off:off+1<<20]) {
			t.Fatalf("READ at %d after gc: errno %d, or not what was written", off, errno)
		}
	}
	if after, _ := segmentFiles(t, dir, "vm1"); after >= before {
		t.Errorf("segments hold %d bytes after gc of the served volume, %d before", after, before)
	}

	// The server words its own refusals.
	for _, tc := range []struct {
		vol, want string
	}{
		{"other", fmt.Sprintf("other is not open in this server (pid %d)", os.Getpid())},
		{"a/b", `invalid volume name "a/b"`},
	} {
		err := admin.Call(t.Context(), adminSock, admin.Request{Op: admin.OpGC, Volume: tc.vol}, 0, &lfs.GCStats{})
		var se *admin.ServerError
		if !errors.As(err, &se) || !strings.Contains(se.Msg, tc.want) {
			t.Errorf("gc of %s through the socket: %v, want %q", tc.vol, err, tc.want)
		}
	}

	c.conn.Close()
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, stderr.String())
	}
	log := stderr.String()
	if n := strings.Count(log, "cleaned vm1 on request"); n != 2 {
		t.Errorf("the log tells of %d gc runs, want 2:\n%s", n, log)
	}
	if strings.Contains(log, "level=ERROR") {
		t.Errorf("errors logged:\n%s", log)
	}
	if got := readVolume(t, dir, "vm1"); !bytes.Equal(got, model) {
		t.Error("the volume reads differently after serve stopped")
	}
	mustHLFS(t, store, "fsck", "vm1")
}

// TestGCDefragments: blocks written one by one in random order are
// fragmented (du), and gc rewrites them in address order by default
// (reported), leaving the content alone; --defrag 0 does not.
func TestGCDefragments(t *testing.T) {
	store, dir := testStore(t)
	if err := lfs.Create(dirStore(t, dir), "vm1", lfs.Config{Size: 4 << 20, SegmentSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	v, err := lfs.Open(dirStore(t, dir), "vm1", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	model := fill("scattered", 2<<20)
	for i := 0; i < 512; i++ {
		b := (i * 181) % 512 // every block once, out of order
		if err := v.WriteAt(model[b*4096:(b+1)*4096], int64(b)*4096, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	var u lfs.Usage
	if err := json.Unmarshal([]byte(mustHLFS(t, store, "du", "vm1", "--json")), &u); err != nil {
		t.Fatal(err)
	}
	if u.FragmentedBytes != 2<<20 || u.Extents < 500 {
		t.Fatalf("du before gc: %d extents, %d fragmented bytes; want ~512, 2 MiB", u.Extents, u.FragmentedBytes)
	}
	var st lfs.GCStats
	if err := json.Unmarshal([]byte(mustHLFS(t, store, "gc", "vm1", "--json", "--defrag", "0")), &st); err != nil {
		t.Fatal(err)
	}
	if st.DefragWindows != 0 {
		t.Errorf("gc --defrag 0 defragmented: %+v", st)
	}
	out := mustHLFS(t, store, "gc", "vm1")
	if !strings.Contains(out, "of it defragmenting 2 windows") {
		t.Errorf("gc output: %s", out)
	}
	if err := json.Unmarshal([]byte(mustHLFS(t, store, "du", "vm1", "--json")), &u); err != nil {
		t.Fatal(err)
	}
	if u.FragmentedBytes != 0 || u.Extents > 4 {
		t.Errorf("du after gc: %d extents, %d fragmented bytes", u.Extents, u.FragmentedBytes)
	}
	if got := readVolume(t, dir, "vm1"); !bytes.Equal(got[:2<<20], model) {
		t.Error("gc changed the content")
	}
	wantError(t, hlfs(t, store, "gc", "vm1", "--defrag", "lots"), 2, "--defrag")
}
