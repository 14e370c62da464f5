package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/lfs"
)

// Serving a fleet: `hlfs serve` with no names serves the store as it is
// now, opening volumes when clients ask and closing them when unused
// (docs/design.md "Serving a fleet").

// newFleetServer creates vols and starts `hlfs serve` of every volume with
// an admin socket and the extra serve arguments args (e.g. --idle-close).
func newFleetServer(tb testing.TB, args []string, vols ...Volume) *Server {
	tb.Helper()
	s := newServer(tb, vols...)
	s.Exports = []string{}
	s.AdminSocket = adminSocketPath(tb)
	s.ServeArgs = args
	s.Start()
	return s
}

// createVolumes creates n volumes PREFIX000.. of size bytes in s's store,
// in this process (hlfs create n times would cost a process each).
func createVolumes(tb testing.TB, s *Server, prefix string, n int, size int64) []string {
	tb.Helper()
	st, err := objstore.OpenDirStore(s.Dir)
	if err != nil {
		tb.Fatal(err)
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s%03d", prefix, i)
		if err := lfs.Create(st, names[i], lfs.Config{Size: size}); err != nil {
			tb.Fatal(err)
		}
	}
	return names
}

// owner returns the pid of the process serving vol, 0 when none does.
func (s *Server) owner(tb testing.TB, vol string) int {
	tb.Helper()
	var info struct {
		Owner *struct {
			PID int `json:"pid"`
		} `json:"owner"`
	}
	if err := json.Unmarshal([]byte(s.hlfs("info", vol, "--json")), &info); err != nil {
		tb.Fatal(err)
	}
	if info.Owner == nil {
		return 0
	}
	return info.Owner.PID
}

// waitFor polls cond every 50 ms until it holds, failing tb after d.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not after %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A volume created, snapshotted, cloned and removed while serve runs is
// exported and unexported without a restart.
func TestFleetVolumesComeAndGo(t *testing.T) {
	Begin(t, "qemu-io")
	requireHLFS(t)
	s := newFleetServer(t, []string{"--idle-close", "1s"}, Volume{Name: "base", Size: 4 << 20})
	if pid := s.owner(t, "base"); pid != 0 {
		t.Errorf("base is owned by pid %d before any client asked for it", pid)
	}
	if names := exportNames(t, s.Addr); strings.Join(names, ",") != "base" {
		t.Fatalf("exports at start: %q", names)
	}

	s.hlfs("create", "late", "--size", "4M")
	qemuIO(t, s.URI("late"), "write -P 0x4c 0 64k", "flush")
	s.hlfs("snapshot", "create", "late@s1") // through serve or not: late may be closed idle by now
	qemuIO(t, s.URI("late"), "write -P 0x4d 0 64k", "flush")
	qemuIORO(t, s.URI("late@s1"), "read -P 0x4c 0 64k")
	s.hlfs("clone", "late@s1", "c1")
	qemuIO(t, s.URI("c1"), "read -P 0x4c 0 64k", "write -P 0xc1 64k 4k", "flush")
	if names := exportNames(t, s.Addr); !contains(names, "late") || !contains(names, "c1") || !contains(names, "base") {
		t.Errorf("exports after create and clone: %q", names)
	}
	info := nbdinfo(t, s.URI("late@s1"))
	if len(info.Exports) != 1 || !info.Exports[0].ReadOnly || info.Exports[0].Size != 4<<20 {
		t.Errorf("nbdinfo late@s1: %+v", info.Exports)
	}

	// rm is refused while c1 is open, and works once it closed idle.
	waitFor(t, 20*time.Second, "rm c1 after its idle close", func() bool {
		_, code := s.hlfsTry(t, "rm", "c1")
		return code == 0
	})
	if names := exportNames(t, s.Addr); contains(names, "c1") {
		t.Errorf("c1 still listed after rm: %q", names)
	}
	if out, err := exec.Command("nbdinfo", s.URI("c1")).CombinedOutput(); err == nil {
		t.Errorf("nbdinfo of the removed c1 succeeded:\n%s", out)
	}
	qemuIO(t, s.URI("late"), "read -P 0x4d 0 64k")
	s.Stop()
	s.Fsck("late")
}

// Two clients asking for a volume nobody has open at the same moment share
// one open volume: each sees the other's flushed writes.
func TestFleetTwoClientsOnNewVolume(t *testing.T) {
	Begin(t)
	requireHLFS(t)
	py := Python(t)
	s := newFleetServer(t, nil, Volume{Name: "base", Size: 1 << 20})
	s.hlfs("create", "fresh", "--size", "1M")
	script := `
import sys, threading, nbd
uri = sys.argv[1]
hs = [nbd.NBD(), nbd.NBD()]
ts = [threading.Thread(target=h.connect_uri, args=(uri,)) for h in hs]
for t in ts: t.start()
for t in ts: t.join()
for i, h in enumerate(hs):
    h.pwrite(bytes([0x60 + i]) * 65536, i * 65536)
    h.flush()
for i, h in enumerate(hs):
    other = 1 - i
    if h.pread(65536, other * 65536) != bytes([0x60 + other]) * 65536:
        sys.exit("client %d does not see the write of client %d" % (i, other))
print("ok")
`
	out, err := exec.Command(py, "-c", script, s.URI("fresh")).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("two clients: %v\n%s", err, out)
	}
	if pid := s.owner(t, "fresh"); pid != s.PID() {
		t.Errorf("fresh owned by pid %d, want the server %d", pid, s.PID())
	}
	s.Stop()
	s.Fsck("fresh")
}

// A volume is kept open while a connection uses it and closed after
// --idle-close without one: its owner lock goes, another server can serve
// it, and the first opens it again with the same bytes once it is free.
func TestFleetIdleClose(t *testing.T) {
	Begin(t, "qemu-io")
	requireHLFS(t)
	py := Python(t)
	s := newFleetServer(t, []string{"--idle-close", "1s"}, Volume{Name: "vol", Size: 4 << 20})
	qemuIO(t, s.URI("vol"), "write -P 0x1d 1M 128k", "flush")

	// A connection holds it however long.
	hold := exec.Command(py, "-c", `
import sys, nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
print("connected", flush=True)
sys.stdin.read()
h.shutdown()
`, s.URI("vol"))
	stdin, err := hold.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := hold.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "connected\n" {
		hold.Process.Kill()
		t.Fatalf("holding client: %q %v", line, err)
	}
	time.Sleep(2500 * time.Millisecond) // well past the idle time, not a synchronization
	if pid := s.owner(t, "vol"); pid != s.PID() {
		t.Errorf("vol not held by the server (pid %d) while a connection uses it", pid)
	}
	stdin.Close()
	if err := hold.Wait(); err != nil {
		t.Fatalf("holding client: %v", err)
	}
	waitFor(t, 15*time.Second, "vol released after its idle close", func() bool { return s.owner(t, "vol") == 0 })
	if !strings.Contains(s.logText(), "closed idle volume vol") {
		t.Errorf("no idle close logged:\n%s", s.logTail())
	}

	// Another server takes it; the first serves it meanwhile as a
	// standby (issue 12): reads of the owner's durable state.
	other := s.sibling(t, "vol")
	other.Start()
	waitFor(t, 15*time.Second, "vol served by the second server", func() bool { return s.owner(t, "vol") == other.PID() })
	qemuIORO(t, other.URI("vol"), "read -P 0x1d 1M 128k")
	qemuIORO(t, s.URI("vol"), "read -P 0x1d 1M 128k")
	if s.owner(t, "vol") != other.PID() {
		t.Errorf("a read on the standby moved the volume")
	}
	other.Stop()
	qemuIO(t, s.URI("vol"), "read -P 0x1d 1M 128k", "read -P 0 0 1M")
	s.Stop()
	s.Fsck("vol")
}

// kill -9 of serve with 50 volumes open under flushing writes loses no
// flushed write on any of them.
func TestFleetKill9ManyVolumes(t *testing.T) {
	Begin(t)
	requireHLFS(t)
	py := Python(t)
	const (
		nvols  = 50
		rounds = 64
		block  = 4096
	)
	s := newServer(t, Volume{Name: "base", Size: 1 << 20})
	vols := createVolumes(t, s, "k", nvols, 1<<20)
	s.Exports = []string{}
	s.Start()
	script, err := filepath.Abs("testdata/fleet_writer.py")
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{script, "write", "--addr", s.Addr, "--block", strconv.Itoa(block), "--rounds", strconv.Itoa(rounds)}, vols...)
	w := exec.Command(py, args...)
	var stderr strings.Builder
	w.Stderr = &stderr
	stdout, err := w.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var acked []string
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			acked = append(acked, sc.Text())
			mu.Unlock()
		}
	}()
	// Kill once every volume is open and has flushed a few blocks.
	waitFor(t, 60*time.Second, "flushed writes on every volume", func() bool {
		mu.Lock()
		defer mu.Unlock()
		seen := map[string]bool{}
		for _, l := range acked {
			seen[strings.Fields(l)[0]] = true
		}
		return len(seen) == nvols && len(acked) >= 4*nvols
	})
	s.Kill()
	werr := w.Wait()
	<-read
	if ee, ok := werr.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("writer: want exit 3 (server gone), got %v\n%s", werr, stderr.String())
	}
	mu.Lock()
	lines := slices.Clone(acked)
	mu.Unlock()
	t.Logf("%d flushed writes on %d volumes before the kill", len(lines), nvols)

	s.Start()
	check := exec.Command(py, append([]string{script, "check", "--addr", s.Addr, "--block", strconv.Itoa(block), "--rounds", strconv.Itoa(rounds)}, vols...)...)
	check.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	out, err := check.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), fmt.Sprintf("ok %d", len(lines))) {
		t.Fatalf("after kill -9: %v\n%s", err, out)
	}
	s.Stop()
	for _, v := range vols[:3] {
		s.Fsck(v)
	}
}

// nbdinfo --list probes every export in turn on one connection: with 300
// it takes longer than a handshake timeout that bounded the whole
// negotiation would allow on a loaded machine.
func TestFleetListManyExports(t *testing.T) {
	Begin(t)
	requireHLFS(t)
	s := newServer(t, Volume{Name: "base", Size: 1 << 20})
	vols := createVolumes(t, s, "v", 300, 1<<20)
	s.Exports = []string{}
	start := time.Now()
	s.Start()
	ready := time.Since(start)
	start = time.Now()
	cmd := exec.Command("nbdinfo", "--json", "--list", "nbd://"+s.Addr)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("nbdinfo --list: %v\n%s", err, stderr)
	}
	var info nbdinfoJSON
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	t.Logf("serve ready in %s; nbdinfo --list of %d exports took %s", ready.Round(time.Millisecond), len(info.Exports), time.Since(start).Round(time.Millisecond))
	got := map[string]int64{}
	for _, e := range info.Exports {
		got[e.Name] = e.Size
	}
	for _, v := range append(vols, "base") {
		if got[v] != 1<<20 {
			t.Errorf("export %s: size %d listed", v, got[v])
		}
	}
	if len(got) != 301 {
		t.Errorf("listed %d exports, want 301", len(got))
	}
}
