package e2e

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// guestWriteScript formats /dev/vda, writes large random files, small files,
// an overwrite and a deletion (mounted with -o discard, so TRIM reaches the
// server), records SHA-256 sums in the file system and on the console, and
// unmounts cleanly.
const guestWriteScript = `
mkfs.ext4 -q -F -L hlfs-e2e /dev/vda
mount -t ext4 -o discard /dev/vda /mnt
mkdir -p /mnt/data/deep/a/b/c
dd if=/dev/urandom of=/mnt/data/big1 bs=1M count=8 2>/dev/null
dd if=/dev/urandom of=/mnt/data/big2 bs=64k count=40 2>/dev/null
dd if=/dev/urandom of=/mnt/data/doomed bs=1M count=2 2>/dev/null
i=1
while [ $i -le 40 ]; do
	head -c $((i * 997)) /dev/urandom > /mnt/data/small$i
	i=$((i + 1))
done
echo hello > /mnt/data/deep/a/b/c/hello.txt
: > /mnt/data/empty
sync
# overwrite in place, then delete a file (discard)
dd if=/dev/urandom of=/mnt/data/big1 bs=4k count=64 seek=300 conv=notrunc 2>/dev/null
rm /mnt/data/doomed
cd /mnt/data
find . -type f | sort | xargs sha256sum > /mnt/SHA256SUMS
sed 's/^/SUM /' /mnt/SHA256SUMS
cd /
sync
umount /mnt
echo BOOT1-DONE
`

// guestMoreWritesScript runs after guestWriteScript's files are synced
// (instead of its umount): it keeps writing 1 MiB files with fsync until the
// device fails, i.e. until the host kills the server.
const guestMoreWritesScript = `
echo SYNCED
set +e
i=0
while [ $i -lt 600 ]; do
	dd if=/dev/urandom of=/mnt/more$i bs=64k count=16 conv=fsync 2>/dev/null || break
	# fsync returned: this file must survive the crash.
	sha256sum /mnt/more$i | sed 's/^/MORE /'
	i=$((i + 1))
done
echo "MORE-STOPPED after=$i"
`

// guestVerifyScript mounts the file system (replaying its journal if the
// first boot never unmounted), verifies every recorded sum, unmounts and
// checks the file system offline.
const guestVerifyScript = `
mount -t ext4 /dev/vda /mnt
cd /mnt/data
sha256sum -c /mnt/SHA256SUMS > /tmp/check 2>&1 || { cat /tmp/check; echo VERIFY-FAIL; exit 1; }
find . -type f | sort | xargs sha256sum | sed 's/^/SUM /'
test ! -e doomed
cd /
for f in /mnt/more*; do [ -f "$f" ] && sha256sum "$f" | sed 's/^/MORESUM /'; done
umount /mnt
echo VERIFY-PASS
if e2fsck -fn /dev/vda; then echo FSCK-CLEAN; else echo "FSCK-ERRORS rc=$?"; fi
`

var (
	sumRE  = regexp.MustCompile(`(?m)^SUM ([0-9a-f]{64})  (\S+)$`)
	moreRE = regexp.MustCompile(`(?m)^MORE(?:SUM)? ([0-9a-f]{64})  (\S+)$`)
)

// moreSums maps /mnt/moreN to its sum, from MORE (boot 1, fsync returned)
// or MORESUM (boot 2) lines.
func moreSums(console, prefix string) map[string]string {
	m := map[string]string{}
	for _, x := range moreRE.FindAllStringSubmatch(console, -1) {
		if strings.HasPrefix(x[0], prefix+" ") {
			m[x[2]] = x[1]
		}
	}
	return m
}

func consoleSums(tb testing.TB, console string) []string {
	tb.Helper()
	var sums []string
	for _, m := range sumRE.FindAllStringSubmatch(console, -1) {
		sums = append(sums, m[2]+" "+m[1])
	}
	sort.Strings(sums)
	if len(sums) < 40 {
		tb.Fatalf("only %d SUM lines on the console", len(sums))
	}
	return sums
}

// TestGuestExt4WriteThenVerify boots a Linux guest on a served volume,
// makes and fills an ext4 file system, restarts the server and checks every
// file in a second boot. Variants: SIGTERM after the guest unmounted;
// SIGKILL after the guest unmounted; SIGKILL while the guest is still
// writing more files with fsync after syncing the checked ones.
func TestGuestExt4WriteThenVerify(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode string
	}{
		{"sigterm", "term"},
		{"sigkill", "kill"},
		{"sigkill-while-writing", "kill-busy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			Begin(t, "qemu-system-x86_64")
			s := NewServer(t, Volume{Name: "guestvol", Size: 1 << 30})

			var want []string
			var wantMore map[string]string
			switch tc.mode {
			case "term", "kill":
				c1 := BootGuest(t, s.URI("guestvol"), guestWriteScript)
				if !strings.Contains(c1, "BOOT1-DONE") {
					t.Fatalf("boot 1 did not finish:\n%s", tail(c1, 40))
				}
				want = consoleSums(t, c1)
				if tc.mode == "kill" {
					s.Kill()
				} else {
					s.Stop()
					s.Fsck("guestvol")
				}
			case "kill-busy":
				script := strings.Replace(guestWriteScript, "umount /mnt\necho BOOT1-DONE\n", guestMoreWritesScript, 1)
				signal := s.Signaller()
				killed := make(chan struct{})
				r := RunGuest(t, s.URI("guestvol"), script, GuestOptions{OnLine: func(line string) {
					if strings.HasPrefix(line, "SYNCED") {
						go func() {
							time.Sleep(time.Second) // let a few fsync'd files land
							signal(syscall.SIGKILL)
							close(killed)
						}()
					}
				}})
				select {
				case <-killed:
				default:
					t.Fatalf("guest never reported SYNCED (%v):\n%s", r, tail(r.Console, 40))
				}
				s.WaitExit(10 * time.Second)
				n, _ := strconv.Atoi(Marker(t, r.Console, "MORE-STOPPED after="))
				t.Logf("guest wrote %d more fsync'd MiB files before the server died", n)
				if n >= 600 {
					t.Errorf("the guest finished all its writes before the kill: not a crash mid-load")
				}
				want = consoleSums(t, r.Console)
				wantMore = moreSums(r.Console, "MORE")
				if len(wantMore) == 0 {
					t.Errorf("no fsync'd file completed before the kill")
				}
			}
			s.Start()

			verifyGuestBoot(t, BootGuest(t, s.URI("guestvol"), guestVerifyScript), want, wantMore)
			s.Stop()
			s.Fsck("guestvol")
		})
	}
}

// verifyGuestBoot checks the console of a verifying boot: every checksum of
// the writing boot verifies, e2fsck finds nothing after the journal replay,
// the file sums match boot 1's (want), and every file whose fsync returned
// in boot 1 (wantMore) reads back with the same sum.
func verifyGuestBoot(t *testing.T, console string, want []string, wantMore map[string]string) {
	t.Helper()
	if !strings.Contains(console, "VERIFY-PASS") {
		t.Fatalf("checksums did not verify:\n%s", tail(console, 60))
	}
	if !strings.Contains(console, "FSCK-CLEAN") {
		t.Errorf("e2fsck -fn found problems after the journal replay:\n%s", tail(console, 60))
	}
	gotMore := moreSums(console, "MORESUM")
	for f, sum := range wantMore {
		if gotMore[f] != sum {
			t.Errorf("%s: fsync returned in boot 1 with sum %.16s, boot 2 reads %.16q", f, sum, gotMore[f])
		}
	}
	if got := consoleSums(t, console); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("file sums differ between boots:\nboot 1:\n%s\nboot 2:\n%s",
			strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
}
