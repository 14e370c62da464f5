package e2e

import (
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The migration guest's ext4 file system covers the first 192 MiB of the
// 256 MiB volume; the 4 KiB block at 240 MiB is the mailbox through which
// the host tells the guest that a migration completed ("1111": it runs on
// host B now, "2222": back on host A), written through the server the
// guest uses at that moment.
const (
	migVolSize = 256 << 20
	migMailbox = 240 << 20
	migFSSize  = "192M"
)

// migScript: make the file system, then two phases. Each writes 128 KiB
// files of random data with fsync (a sync every 5), records each file's sum
// in /mnt/SUMS and on the console, and goes on until the mailbox says the
// phase's migration completed, then writes 4 more files; then it syncs,
// drops its page cache and verifies every file written so far. The host
// migrates A to B during phase 1 and B to A during phase 2. Finally the
// guest unmounts and checks the file system.
var migScript = fmt.Sprintf(`
MBOX=%d
mbox() { dd if=/dev/vda bs=4096 skip=$MBOX count=1 iflag=direct 2>/dev/null | head -c 4; }
mkfs.ext4 -q -F -L hlfs-mig /dev/vda %s
mount -t ext4 /dev/vda /mnt
mkdir /mnt/load
: > /mnt/SUMS
i=0
load() {
	want=$1$1$1$1
	extra=0
	while [ $extra -lt 4 ]; do
		i=$((i + 1))
		if [ $i -gt 1000 ]; then echo "LOAD-TIMEOUT phase $1"; exit 1; fi
		dd if=/dev/urandom of=/mnt/load/f$i bs=64k count=2 conv=fsync 2>/dev/null
		(cd /mnt/load && sha256sum f$i) >> /mnt/SUMS
		sed -n '$s/^/SUM /p' /mnt/SUMS
		if [ $((i %% 5)) -eq 0 ]; then sync; fi
		echo "WROTE $i"
		if [ "$(mbox)" = "$want" ]; then extra=$((extra + 1)); fi
	done
}
verify() {
	sync
	echo 3 > /proc/sys/vm/drop_caches
	(cd /mnt/load && sha256sum -c /mnt/SUMS) > /tmp/check 2>&1 || { cat /tmp/check; echo "VERIFY-$1-FAIL"; exit 1; }
	echo "VERIFY-$1-PASS files=$(wc -l < /mnt/SUMS)"
}
load 1
verify B
load 2
verify A
umount /mnt
if e2fsck -fn /dev/vda > /tmp/fsck 2>&1; then echo FSCK-CLEAN; else cat /tmp/fsck; echo FSCK-ERRORS; fi
echo MIGRATE-DONE
`, migMailbox/4096, migFSSize)

// migVerifyScript: a fresh boot checks every file against SUMS, prints the
// sums, and checks the file system.
const migVerifyScript = `
mount -t ext4 /dev/vda /mnt
(cd /mnt/load && sha256sum -c /mnt/SUMS) > /tmp/check 2>&1 || { cat /tmp/check; echo VERIFY-FAIL; exit 1; }
echo "VERIFY-PASS files=$(wc -l < /mnt/SUMS)"
sed 's/^/SUM /' /mnt/SUMS
umount /mnt
if e2fsck -fn /dev/vda > /tmp/fsck 2>&1; then echo FSCK-CLEAN; else cat /tmp/fsck; echo FSCK-ERRORS; fi
`

var migSumRE = regexp.MustCompile(`(?m)^SUM ([0-9a-f]{64})  (f\d+)$`)

// migSums returns the sorted "file sum" lines of a console.
func migSums(console string) []string {
	var out []string
	for _, m := range migSumRE.FindAllStringSubmatch(console, -1) {
		out = append(out, m[2]+" "+m[1])
	}
	sort.Strings(out)
	return out
}

var wroteRE = regexp.MustCompile(`^WROTE (\d+)$`)

// TestLiveMigration is issue 12's live migration: two servers on one store
// act as two hosts (HLFS_HOSTNAME=host-a and host-b), a guest booted from
// host A's export writes files with fsync and records their sums, and is
// live-migrated (QEMU `migrate -d` to a destination QEMU started with
// -incoming on host B's export of the same volume) in the middle of that
// load; on B it finishes the load and verifies every file with its page
// cache dropped, then migrates back to A during a second load and verifies
// again. A fresh boot verifies the file system, and fsck is clean. On the
// local store and on HDFS; with HLFS_E2E_SERVER=qemu-nbd it runs on two
// qemu-nbd processes of one image, which validates the harness.
func TestLiveMigration(t *testing.T) {
	backends := []string{"local", "hdfs"}
	if backendFromEnv() != BackendHLFS {
		backends = []string{"local"}
	}
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			Begin(t, "qemu-system-x86_64", "qemu-io")
			a, b := roamServers(t, backend, Volume{Name: "vm", Size: migVolSize})
			a.Start()
			b.Start()
			testLiveMigration(t, a, b, "vm")
		})
	}
}

func testLiveMigration(t *testing.T, a, b *Server, vol string) {
	events := make(chan string, 64)
	var lastWrote atomic.Value // the guest's last WROTE line, for logs
	lastWrote.Store("")
	onLine := func(line string) {
		line = strings.TrimSpace(line)
		switch {
		case line == "WROTE 3":
			events <- "load1"
		case strings.HasPrefix(line, "VERIFY-B-PASS"):
			events <- "load2"
		case strings.HasPrefix(line, "WROTE "):
			lastWrote.Store(line)
		}
	}
	g := StartMigratingGuest(t, a.URI(vol), migScript, GuestOptions{
		MemoryMB: 256, Timeout: 6 * time.Minute, OnLine: onLine})
	wait := func(what string) {
		t.Helper()
		select {
		case ev := <-events:
			if ev != what {
				t.Fatalf("guest event %q, want %q", ev, what)
			}
		case <-time.After(3 * time.Minute):
			t.Fatalf("guest never got to %s; console tail:\n%s", what, tail(g.Console(), 40))
		}
	}
	mailbox := func(s *Server, v byte) {
		t.Helper()
		out, err := exec.Command("qemu-io", "-f", "raw", s.URI(vol),
			"-c", fmt.Sprintf("write -P 0x%x %d 4k", v, migMailbox), "-c", "flush").CombinedOutput()
		if err != nil {
			t.Fatalf("qemu-io writing the mailbox through %s: %v\n%s", s.Addr, err, out)
		}
	}

	wait("load1")
	st := g.MigrateTo(b.URI(vol))
	t.Logf("A -> B: migrated in %v (QEMU downtime %s), guest at %q", st.Took.Round(time.Millisecond), st.Downtime, lastWrote.Load())
	mailbox(b, '1')

	wait("load2")
	st = g.MigrateTo(a.URI(vol))
	t.Logf("B -> A: migrated in %v (QEMU downtime %s), guest at %q", st.Took.Round(time.Millisecond), st.Downtime, lastWrote.Load())
	mailbox(a, '2')

	r := g.Wait()
	if r.ExitCode != 0 {
		t.Fatalf("migrating guest exited %d; output tail:\n%s", r.ExitCode, tail(r.Output, 40))
	}
	if miss := missingMarkers(r.Output, "FSCK-CLEAN", "MIGRATE-DONE"); len(miss) > 0 {
		t.Fatalf("markers %v missing; output tail:\n%s", miss, tail(r.Output, 40))
	}
	for _, p := range []string{"VERIFY-B-PASS", "VERIFY-A-PASS"} {
		t.Logf("%s", Marker(t, r.Output, p))
	}
	want := migSums(r.Output)

	c := BootGuest(t, a.URI(vol), migVerifyScript)
	if miss := missingMarkers(c, "FSCK-CLEAN"); len(miss) > 0 {
		t.Errorf("fresh boot: e2fsck found problems:\n%s", tail(c, 40))
	}
	t.Logf("fresh boot: VERIFY-PASS %s", Marker(t, c, "VERIFY-PASS"))
	if got := migSums(c); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the fresh boot's SUMS (%d files) differ from the sums the migrating guest printed (%d files)", len(got), len(want))
	}
	if a.Backend == BackendHLFS {
		// The guest's writes on each side moved the volume: A handed it
		// to B, and B back to A.
		for _, s := range []*Server{a, b} {
			if !strings.Contains(s.logText(), "handed off") {
				t.Errorf("%s's log shows no hand-off:\n%s", s.Addr, s.logTail())
			}
		}
	}
	b.Stop()
	a.Stop()
	a.Fsck(vol)
}
