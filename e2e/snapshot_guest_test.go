package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The guest's ext4 file system covers the first 448 MiB of the 512 MiB
// volume; the 4 KiB block at 480 MiB is a mailbox outside it, which the host
// writes (pattern 0x5a, a second NBD connection) once the live snapshot is
// taken, and which the guest polls with O_DIRECT reads. That is how a guest
// that has no network learns that the host is done.
const (
	snapVolSize   = 512 << 20
	snapMailbox   = 480 << 20
	snapFSSize    = "448M"
	readOnlyDrive = ",readonly=on"
)

// snapPrelude defines the guest's helpers. mkset NAME N writes file set
// NAME into /mnt/NAME (N*64 KiB of random data plus 12 small files), stores
// their sums in /mnt/NAME/SUMS and prints them as SUM-NAME lines. checkset
// NAME verifies a set against its SUMS (SET-NAME-OK or SET-NAME-BAD) and
// prints freshly computed sums; absent NAME prints SET-NAME-ABSENT or
// SET-NAME-PRESENT; mbox prints MBOX-FULL or MBOX-EMPTY; fsck prints
// FSCK-CLEAN or FSCK-ERRORS (e2fsck -fn, the file system unmounted).
var snapPrelude = fmt.Sprintf(`
MBOX=%d
mkset() {
	d=/mnt/$1
	mkdir -p $d
	dd if=/dev/urandom of=$d/big bs=64k count=$2 2>/dev/null
	i=1
	while [ $i -le 12 ]; do
		head -c $((i * 1531)) /dev/urandom > $d/f$i
		i=$((i + 1))
	done
	(cd $d && find . -type f ! -name SUMS | sort | xargs sha256sum > SUMS)
	sed "s/^/SUM-$1 /" $d/SUMS
}
checkset() {
	if [ -f /mnt/$1/SUMS ] && (cd /mnt/$1 && sha256sum -c SUMS > /tmp/check 2>&1); then
		echo "SET-$1-OK"
	else
		echo "SET-$1-BAD"
		cat /tmp/check 2>/dev/null || true
	fi
	(cd /mnt/$1 && find . -type f ! -name SUMS | sort | xargs sha256sum) | sed "s/^/SUM-$1 /"
}
absent() {
	if [ -e /mnt/$1 ]; then echo "SET-$1-PRESENT"; else echo "SET-$1-ABSENT"; fi
}
mbox() {
	if [ "$(dd if=/dev/vda bs=4096 skip=$MBOX count=1 iflag=direct 2>/dev/null | head -c 4)" = ZZZZ ]; then
		echo MBOX-FULL
	else
		echo MBOX-EMPTY
	fi
}
fsck() {
	if e2fsck -fn /dev/vda > /tmp/fsck 2>&1; then echo FSCK-CLEAN; else cat /tmp/fsck; echo FSCK-ERRORS; fi
}
`, snapMailbox/4096)

// snapBoot1 makes the file system, writes set A, freezes the file system
// (as a guest agent would before a snapshot), waits for the host to take
// the snapshot and fill the mailbox, thaws, and writes set B: the writes
// after a live snapshot, from the same running guest.
var snapBoot1 = `
mkfs.ext4 -q -F -L hlfs-snap /dev/vda ` + snapFSSize + `
mount -t ext4 /dev/vda /mnt
mkset A 64
sync
fsfreeze --freeze /mnt
echo A-FROZEN
n=0
while [ "$(mbox)" != MBOX-FULL ]; do
	n=$((n + 1))
	if [ $n -gt 300 ]; then echo MAILBOX-TIMEOUT; fsfreeze --unfreeze /mnt; exit 1; fi
	sleep 0.2
done
echo SAW-SNAPSHOT
fsfreeze --unfreeze /mnt
mkset B 48
sync
umount /mnt
fsck
echo BOOT1-DONE
`

// snapBootSnapshot checks the snapshot through a read-only drive.
const snapBootSnapshot = `
echo "VDA-RO=$(cat /sys/block/vda/ro)"
mount -t ext4 -o ro,noload /dev/vda /mnt
checkset A
absent B
umount /mnt
mbox
fsck
`

// snapBootClone checks the new clone and writes set C into it.
const snapBootClone = `
mount -t ext4 /dev/vda /mnt
checkset A
absent B
mkset C 32
sync
umount /mnt
fsck
echo CLONE-WRITTEN
`

// checkScript mounts the file system, checks that the present sets verify
// and the absent ones are absent, unmounts, runs extra and e2fsck.
func checkScript(present, absentSets []string, extra ...string) string {
	var b strings.Builder
	b.WriteString("mount -t ext4 /dev/vda /mnt\n")
	for _, s := range present {
		b.WriteString("checkset " + s + "\n")
	}
	for _, s := range absentSets {
		b.WriteString("absent " + s + "\n")
	}
	b.WriteString("umount /mnt\n")
	for _, e := range extra {
		b.WriteString(e + "\n")
	}
	b.WriteString("fsck\n")
	return b.String()
}

var setSumRE = regexp.MustCompile(`(?m)^SUM-([A-Z]) ([0-9a-f]{64})  (\S+)$`)

// setSums returns the sorted "path sum" lines of one set on a console.
func setSums(console, set string) []string {
	var out []string
	for _, m := range setSumRE.FindAllStringSubmatch(console, -1) {
		if m[1] == set {
			out = append(out, m[3]+" "+m[2])
		}
	}
	sort.Strings(out)
	return out
}

// bootSnap boots a guest on uri with the helpers and script and fails the
// test unless the script exits 0 and prints every marker as a line.
func bootSnap(t *testing.T, what, uri, script string, markers ...string) string {
	t.Helper()
	r := RunGuest(t, uri, snapPrelude+script, GuestOptions{})
	if r.ExitCode != 0 {
		t.Fatalf("%s: guest script exited %d; output:\n%s", what, r.ExitCode, r.Output)
	}
	if miss := missingMarkers(r.Output, markers...); len(miss) > 0 {
		t.Fatalf("%s: markers %v missing; output:\n%s", what, miss, r.Output)
	}
	t.Logf("%s: %s, markers %v", what, r, markers)
	return r.Output
}

// sameSums fails the test unless console shows set with exactly want.
func sameSums(t *testing.T, what, console, set string, want []string) {
	t.Helper()
	got := setSums(console, set)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s: set %s differs from when it was written:\nwritten:\n%s\nread:\n%s",
			what, set, strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
}

// TestGuestSnapshotCloneRollback drives snapshots, clones, rollback and
// flatten with a Linux guest on ext4:
//
//  1. serve every volume of a fresh store (vm1); a guest makes ext4, writes
//     set A, freezes the file system, and while it waits the host runs
//     `hlfs snapshot create vm1@s1`, which the serving process must carry
//     out (admin socket); the guest thaws and writes set B;
//  2. a guest on the read-only export vm1@s1 sees A, not B;
//  3. `hlfs clone vm1@s1 c1` while vm1 is served; a second server serves
//     c1 (the first one exports only the volumes that existed when it
//     started); a guest on c1 sees A, not B, and writes set C;
//  4. a guest on vm1 sees A and B, not C;
//  5. rollback is refused while served; stop, fsck, roll back, serve: a
//     guest on vm1 sees A, not B;
//  6. `snapshot rm vm1@s1` is refused naming c1; stop, flatten c1, the
//     removal succeeds, fsck is clean, and a guest on c1 sees A and C.
func TestGuestSnapshotCloneRollback(t *testing.T) {
	Begin(t, "qemu-system-x86_64", "qemu-io")
	requireHLFS(t)
	start := time.Now()
	s := newServeAllServer(t, Volume{Name: "vm1", Size: snapVolSize})

	// 1. Set A, live snapshot while the guest runs with A frozen, set B.
	var (
		snapOnce         sync.Once
		snapDone         = make(chan struct{})
		snapOut, mboxOut string
		snapErr, mboxErr error
		snapTook         time.Duration
	)
	r1 := RunGuest(t, s.URI("vm1"), snapPrelude+snapBoot1, GuestOptions{OnLine: func(line string) {
		if strings.TrimSpace(line) != "A-FROZEN" {
			return
		}
		snapOnce.Do(func() {
			go func() {
				defer close(snapDone)
				t0 := time.Now()
				snapOut, snapErr = s.tryHLFS("snapshot", "create", "vm1@s1")
				snapTook = time.Since(t0)
				// Tell the guest, whatever happened (it would wait 60 s).
				b, err := exec.Command("qemu-io", "-f", "raw", s.URI("vm1"),
					"-c", fmt.Sprintf("write -P 0x5a %d 4k", snapMailbox), "-c", "flush").CombinedOutput()
				mboxOut, mboxErr = string(b), err
			}()
		})
	}})
	if missingMarkers(r1.Output, "A-FROZEN") != nil {
		t.Fatalf("boot 1: the guest never froze its file system (%v); output:\n%s", r1, tail(r1.Output, 40))
	}
	select {
	case <-snapDone:
	case <-time.After(time.Minute):
		t.Fatal("hlfs snapshot create and the mailbox write did not finish in a minute")
	}
	if snapErr != nil {
		t.Fatalf("hlfs snapshot create vm1@s1 while vm1 is served: %v\n%s", snapErr, snapOut)
	}
	if mboxErr != nil {
		t.Fatalf("qemu-io writing the mailbox: %v\n%s", mboxErr, mboxOut)
	}
	if r1.ExitCode != 0 {
		t.Fatalf("boot 1: guest script exited %d; output:\n%s", r1.ExitCode, r1.Output)
	}
	if miss := missingMarkers(r1.Output, "A-FROZEN", "SAW-SNAPSHOT", "FSCK-CLEAN", "BOOT1-DONE"); len(miss) > 0 {
		t.Fatalf("boot 1: markers %v missing; output:\n%s", miss, r1.Output)
	}
	t.Logf("boot 1 (%v): snapshot create took %v while the guest was frozen: %s",
		r1, snapTook.Round(time.Millisecond), strings.TrimSpace(snapOut))
	// The serving process took it (its log says so, and it exports the
	// snapshot without a restart): the command went through the admin socket.
	if !s.Running() {
		t.Fatal("the server exited during boot 1")
	}
	if fi, err := os.Stat(s.AdminSocket); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("the server's admin socket %s: %v", s.AdminSocket, err)
	}
	if !strings.Contains(s.logText(), `msg="created snapshot vm1@s1"`) {
		t.Fatalf("the serving process did not log the snapshot: not taken through its admin socket; log:\n%s", s.logTail())
	}
	if names := exportNames(t, s.Addr); !contains(names, "vm1@s1") {
		t.Fatalf("after a live snapshot the server exports %v, want vm1@s1 among them", names)
	}
	sumsA, sumsB := setSums(r1.Output, "A"), setSums(r1.Output, "B")
	if len(sumsA) != 13 || len(sumsB) != 13 {
		t.Fatalf("boot 1 printed %d sums of set A and %d of set B, want 13 each:\n%s", len(sumsA), len(sumsB), r1.Output)
	}

	// 2. The snapshot, read-only.
	out := bootSnap(t, "boot 2 (vm1@s1, read-only)", s.URI("vm1@s1")+readOnlyDrive, snapBootSnapshot,
		"VDA-RO=1", "SET-A-OK", "SET-B-ABSENT", "MBOX-EMPTY", "FSCK-CLEAN")
	sameSums(t, "boot 2 (vm1@s1)", out, "A", sumsA)

	// 3. Clone while vm1 is served; a second server serves the clone.
	t.Logf("hlfs clone: %s", strings.TrimSpace(s.hlfs("clone", "vm1@s1", "c1")))
	if names := exportNames(t, s.Addr); contains(names, "c1") {
		t.Logf("note: the running serve-everything server exports c1 without a restart: %v", names)
	} else {
		t.Logf("the running server exports %v (not c1, created after it started): serving c1 from a second server", names)
	}
	// The listing opened c1 here for a moment (nbdinfo --list probes every
	// export); the second server can take it once it closed.
	waitFor(t, 30*time.Second, "c1 released by the first server", func() bool { return s.owner(t, "c1") == 0 })
	s2 := s.sibling(t, "c1")
	s2.Start()
	out = bootSnap(t, "boot 3 (c1 on the second server)", s2.URI("c1"), snapBootClone,
		"SET-A-OK", "SET-B-ABSENT", "FSCK-CLEAN", "CLONE-WRITTEN")
	sameSums(t, "boot 3 (c1)", out, "A", sumsA)
	sumsC := setSums(out, "C")
	if len(sumsC) != 13 {
		t.Fatalf("boot 3 printed %d sums of set C, want 13", len(sumsC))
	}

	// 4. vm1 is untouched by the clone's writes.
	out = bootSnap(t, "boot 4 (vm1)", s.URI("vm1"), checkScript([]string{"A", "B"}, []string{"C"}, "mbox"),
		"SET-A-OK", "SET-B-OK", "SET-C-ABSENT", "MBOX-FULL", "FSCK-CLEAN")
	sameSums(t, "boot 4 (vm1)", out, "A", sumsA)
	sameSums(t, "boot 4 (vm1)", out, "B", sumsB)

	// 5. Rollback: refused while served, then offline.
	if o, err := s.tryHLFS("snapshot", "rollback", "vm1@s1"); err == nil {
		t.Fatalf("snapshot rollback while vm1 is served succeeded:\n%s", o)
	} else {
		t.Logf("rollback while served refused: %s", strings.TrimSpace(o))
	}
	s2.Stop()
	s.Stop()
	s.Fsck("vm1")
	s.Fsck("c1")
	t.Logf("%s", strings.TrimSpace(s.hlfs("snapshot", "rollback", "vm1@s1")))
	s.Start()
	// The list names the snapshots of open volumes only; vm1@s1 is
	// served all the same.
	if names := exportNames(t, s.Addr); !contains(names, "vm1") || !contains(names, "c1") {
		t.Fatalf("after the restart the server exports %v, want vm1 and c1", names)
	}
	if info := nbdinfo(t, s.URI("vm1@s1")); len(info.Exports) != 1 || !info.Exports[0].ReadOnly {
		t.Fatalf("after the restart vm1@s1 is not served read-only: %+v", info.Exports)
	}
	out = bootSnap(t, "boot 5 (vm1 rolled back)", s.URI("vm1"), checkScript([]string{"A"}, []string{"B", "C"}, "mbox"),
		"SET-A-OK", "SET-B-ABSENT", "SET-C-ABSENT", "MBOX-EMPTY", "FSCK-CLEAN")
	sameSums(t, "boot 5 (vm1 rolled back)", out, "A", sumsA)

	// 6. The snapshot cannot go while c1 depends on it; flatten c1, then it can.
	if o, err := s.tryHLFS("snapshot", "rm", "vm1@s1"); err == nil {
		t.Fatalf("snapshot rm vm1@s1 with clone c1 succeeded:\n%s", o)
	} else if !strings.Contains(o, "c1") {
		t.Fatalf("snapshot rm vm1@s1 refused without naming clone c1: %s", o)
	} else {
		t.Logf("snapshot rm refused: %s", strings.TrimSpace(o))
	}
	s.Stop()
	s.Fsck("vm1")
	s.Fsck("c1")
	t.Logf("%s", strings.TrimSpace(s.hlfs("flatten", "c1")))
	t.Logf("%s", strings.TrimSpace(s.hlfs("snapshot", "rm", "vm1@s1")))
	s.Fsck("vm1")
	s.Fsck("c1")
	s.Start()
	if names := exportNames(t, s.Addr); contains(names, "vm1@s1") || !contains(names, "c1") {
		t.Fatalf("after flatten and snapshot rm the server exports %v, want c1 and no vm1@s1", names)
	}
	out = bootSnap(t, "boot 6 (c1 flattened)", s.URI("c1"), checkScript([]string{"A", "C"}, []string{"B"}),
		"SET-A-OK", "SET-C-OK", "SET-B-ABSENT", "FSCK-CLEAN")
	sameSums(t, "boot 6 (c1 flattened)", out, "A", sumsA)
	sameSums(t, "boot 6 (c1 flattened)", out, "C", sumsC)
	s.Stop()
	s.Fsck("c1")
	s.Fsck("vm1")
	t.Logf("whole test: %v", time.Since(start).Round(time.Millisecond))
}
