package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The real-client tests on an HDFS store (the mini-cluster of
// testdata/hdfs, HLFS_HDFS_URI): each uses a fresh folder of the cluster.
// On HDFS only Close is durable, so every NBD FLUSH closes the segment
// holding the writes it covers; with --journal DIR segments go to a local
// fsync'd journal first and reach HDFS whole.

// TestHDFSQemuIOPatterns drives WRITE, READ, TRIM, WRITE_ZEROES, FLUSH and
// FUA writes through qemu-io on a volume in HDFS (replication 2), restarts
// the server and checks everything reads back.
func TestHDFSQemuIOPatterns(t *testing.T) {
	Begin(t, "qemu-io")
	const size = 256 << 20
	s := newHDFSServer(t, []string{"--replication", "2"}, Volume{Name: "iovol", Size: size})
	s.Start()
	uri := s.URI("iovol")
	qemuIO(t, uri,
		"read -P 0 0 1M",
		"write -P 0xab 0 1M",
		"read -P 0xab 0 1M",
		"write -P 0xcd 4k 4k",
		"read -P 0xcd 4k 4k",
		"read -P 0xab 8k 1016k",
		"write -P 0x5a 1000 3000", // unaligned
		"read -P 0xab 0 1000",
		"read -P 0x5a 1000 3000",
		"write -P 0x6b 6000 10000",
		"read -P 0x6b 6000 10000",
		"write -P 0x11 255M 1M",
		"read -P 0x11 255M 1M",
		"flush",
	)
	qemuIO(t, uri,
		"discard 0 1M",
		"read -P 0 0 1M",
		"write -P 0x77 2M 1M",
		"write -z 2M 512k",
		"read -P 0 2M 512k",
		"read -P 0x77 2560k 512k",
		"write -z -u 3M 64k",
		"read -P 0 3M 64k",
		"write -f -P 0x33 4M 64k", // FUA
		"read -P 0x33 4M 64k",
		"write -P 0x44 8M 4M",
		"flush",
		"write -P 0x55 12M 1M",
		"flush",
	)
	segs := s.infoInt(t, "iovol", "segments")
	s.Stop()
	s.Fsck("iovol")
	s.Start()
	qemuIO(t, uri,
		"read -P 0 0 1M",
		"read -P 0 2M 512k",
		"read -P 0x77 2560k 512k",
		"read -P 0 3M 64k",
		"read -P 0x33 4M 64k",
		"read -P 0x44 8M 4M",
		"read -P 0x55 12M 1M",
		"read -P 0 13M 242M",
		"read -P 0x11 255M 1M",
	)
	s.Stop()
	t.Logf("segments in HDFS while serving (after 3 flushes and a FUA write): %d", segs)
}

// TestHDFSNbdcopyRoundTrip copies a 64 MiB random image into a volume in
// HDFS, restarts the server and copies it out again.
func TestHDFSNbdcopyRoundTrip(t *testing.T) {
	Begin(t, "nbdcopy")
	const (
		size    = 256 << 20
		payload = 64 << 20
	)
	s := newHDFSServer(t, nil, Volume{Name: "copyvol", Size: size})
	s.Start()
	nbdcopyRoundTrip(t, s, "copyvol", size, payload, 7)
	s.Stop()
}

// TestHDFSGuestExt4 boots a Linux guest on a volume in HDFS and fills an
// ext4 file system, then restarts the server and verifies every file in a
// second boot. Variants: SIGTERM after the guest unmounted; SIGKILL while
// the guest keeps writing files with fsync (each fsync is a FLUSH: a
// segment closed in HDFS), every file whose fsync returned must survive.
func TestHDFSGuestExt4(t *testing.T) {
	for _, mode := range []string{"sigterm", "sigkill-while-writing"} {
		t.Run(mode, func(t *testing.T) {
			Begin(t, "qemu-system-x86_64")
			s := newHDFSServer(t, nil, Volume{Name: "guestvol", Size: 1 << 30})
			s.Start()
			var want []string
			var wantMore map[string]string
			if mode == "sigterm" {
				c1 := BootGuest(t, s.URI("guestvol"), guestWriteScript)
				if !strings.Contains(c1, "BOOT1-DONE") {
					t.Fatalf("boot 1 did not finish:\n%s", tail(c1, 40))
				}
				want = consoleSums(t, c1)
				s.Stop()
				s.Fsck("guestvol")
			} else {
				script := strings.Replace(guestWriteScript, "umount /mnt\necho BOOT1-DONE\n", guestMoreWritesScript, 1)
				signal := s.Signaller()
				killed := make(chan struct{})
				r := RunGuest(t, s.URI("guestvol"), script, GuestOptions{OnLine: func(line string) {
					if strings.HasPrefix(line, "SYNCED") {
						go func() {
							time.Sleep(time.Second)
							signal(syscall.SIGKILL)
							close(killed)
						}()
					}
				}})
				select {
				case <-killed:
				default:
					t.Fatalf("guest never reported SYNCED:\n%s", tail(r.Console, 40))
				}
				s.WaitExit(10 * time.Second)
				n, _ := strconv.Atoi(Marker(t, r.Console, "MORE-STOPPED after="))
				t.Logf("guest wrote %d more fsync'd 1 MiB files before the server died", n)
				if n >= 600 {
					t.Errorf("the guest finished all its writes before the kill: not a crash mid-load")
				}
				want = consoleSums(t, r.Console)
				wantMore = moreSums(r.Console, "MORE")
				if len(wantMore) == 0 {
					t.Errorf("no fsync'd file completed before the kill")
				}
			}
			t0 := time.Now()
			s.Start()
			t.Logf("restart took %v", time.Since(t0).Round(time.Millisecond))
			verifyGuestBoot(t, BootGuest(t, s.URI("guestvol"), guestVerifyScript), want, wantMore)
			s.Stop()
			s.Fsck("guestvol")
		})
	}
}

// TestHDFSKill9AndTakeover: kill -9 under a flushing load and restart on
// this host (every flushed write reads back), twice; a clean stop and the
// volume served from another host; kill -9 of that server (lease 3 s): a
// third host serves it at once as a standby (issue 12) with every flushed
// write intact, and its first write takes it over once the lease ran out.
func TestHDFSKill9AndTakeover(t *testing.T) {
	Begin(t, "nbdcopy")
	const (
		vol  = "crashvol"
		size = 64 << 20
		span = 32 << 20
	)
	s := newHDFSServer(t, nil, Volume{Name: vol, Size: size})
	s.Start()
	logPath := filepath.Join(t.TempDir(), "writes.log")
	for cycle := 1; cycle <= 2; cycle++ {
		killUnderLoad(t, s, vol, logPath, span, cycle, 15*cycle)
		t0 := time.Now()
		s.Start()
		t.Logf("cycle %d: restart after kill -9 took %v", cycle, time.Since(t0).Round(time.Millisecond))
		verifyWrites(t, s, vol, logPath, size)
	}
	before := verifyWrites(t, s, vol, logPath, size)
	s.Stop()
	s.Fsck(vol)

	// Another host after a clean stop: at once.
	b := s.onHost(t, "other-host", "--lease", "3s")
	b.Start()
	if got := verifyWrites(t, b, vol, logPath, size); got != before {
		t.Fatalf("another host reads a different image after a clean stop")
	}
	killUnderLoad(t, b, vol, logPath, span, 3, 15)
	killed := time.Now()

	// A third host while other-host's lease may still hold: it serves the
	// volume as a standby (issue 12), every flushed write readable...
	c := s.onHost(t, "host-c")
	c.Start()
	verifyWrites(t, c, vol, logPath, size)
	// ...and its first write takes the volume over once the lease ran out
	// (the dead owner cannot be asked).
	t0 := time.Now()
	qemuIO(t, c.URI(vol), "write -P 0x6c 0 4k", "flush")
	t.Logf("host-c's first write took the volume over %v after the kill (it waited %v)",
		time.Since(killed).Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	if d := time.Since(killed); d < 2*time.Second {
		t.Errorf("host-c wrote %v after the kill, within other-host's 3s lease", d)
	}
	c.Stop()
	c.Start()
	qemuIO(t, c.URI(vol), "read -P 0x6c 0 4k")
	c.Stop()
	c.Fsck(vol)
}

// TestHDFSJournalKill9: serve with --journal, kill -9 under a flushing
// load; another host without the journal is refused, naming the journal;
// the restart with the same journal has every flushed write; after a clean
// stop (the journal shipped) another host serves the volume without a
// journal and reads the same.
func TestHDFSJournalKill9(t *testing.T) {
	Begin(t, "nbdcopy")
	const (
		vol  = "jvol"
		size = 64 << 20
		span = 32 << 20
	)
	jdir := filepath.Join(t.TempDir(), "journal")
	s := newHDFSServer(t, nil, Volume{Name: vol, Size: size})
	s.ServeArgs = []string{"--journal", jdir}
	s.Start()
	logPath := filepath.Join(t.TempDir(), "writes.log")
	killUnderLoad(t, s, vol, logPath, span, 1, 40)

	// Another host without the journal: refused, naming it.
	o := s.onHost(t, "other-host")
	out, err := o.tryServe(t)
	if err == nil || !strings.Contains(out, "journal") || !strings.Contains(out, jdir) {
		t.Fatalf("another host without the journal: want a refusal naming the journal %s, got (%v):\n%s", jdir, err, out)
	}
	t.Logf("another host refused: %s", out)

	// This host with the same journal: every flushed write.
	t0 := time.Now()
	s.Start()
	t.Logf("restart with the journal took %v", time.Since(t0).Round(time.Millisecond))
	verifyWrites(t, s, vol, logPath, size)
	killUnderLoad(t, s, vol, logPath, span, 2, 40)
	s.Start()
	before := verifyWrites(t, s, vol, logPath, size)
	s.Stop()
	if left := filesUnder(t, jdir); len(left) > 0 {
		t.Errorf("journal %s still holds %v after a clean stop", jdir, left)
	}
	s.ServeArgs = nil
	s.Fsck(vol)

	// Another host, no journal: the shipped data.
	o.Start()
	if got := verifyWrites(t, o, vol, logPath, size); got != before {
		t.Fatalf("another host reads a different image than the journal's host")
	}
	o.Stop()
	o.Fsck(vol)
}

// filesUnder lists the regular files below dir.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, rel)
		}
		return nil
	})
	return files
}
