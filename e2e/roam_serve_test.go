package e2e

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// roamServers returns two hlfs servers of vol on one fresh store (backend
// "local" or "hdfs"), acting as two hosts: a runs with HLFS_HOSTNAME=host-a,
// b with host-b, both with the extra serve arguments serveArgs. Neither is
// started.
func roamServers(t *testing.T, backend string, vol Volume, serveArgs ...string) (a, b *Server) {
	t.Helper()
	if backend == "hdfs" {
		a = newHDFSServer(t, nil, vol)
	} else {
		a = newServer(t, vol)
		a.AdminSocket = adminSocketPath(t)
	}
	a.Env = []string{"HLFS_HOSTNAME=host-a"}
	a.ServeArgs = serveArgs
	return a, a.onHost(t, "host-b", serveArgs...)
}

// tryQemuIO runs qemu-io on uri with the given commands and returns its
// output and whether it and every command succeeded.
func tryQemuIO(uri string, cmds ...string) (string, bool) {
	args := []string{"-f", "raw", uri}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("qemu-io", args...).CombinedOutput()
	return string(out), err == nil && !strings.Contains(string(out), "failed")
}

// TestRoamingServeProcesses is TestRoamingOverNBD through two `hlfs serve`
// processes acting as two hosts on one store: a python-libnbd client
// connected to both writes, trims and zeroes on one, flushes, and switches
// to the other, each first write on a standby moving the volume; every
// flushed byte reads back on both servers after every switch. fsck is clean
// after both stopped.
func TestRoamingServeProcesses(t *testing.T) {
	Begin(t)
	requireHLFS(t)
	py := Python(t)
	for _, backend := range []string{"local", "hdfs"} {
		t.Run(backend, func(t *testing.T) {
			rounds := "40" // even: the last round writes on the second server
			if backend == "hdfs" {
				rounds = "16"
			}
			a, b := roamServers(t, backend, Volume{Name: "roam", Size: 4 << 20})
			var metricsURL [2]string
			for i, s := range []*Server{a, b} {
				port := strconv.Itoa(freePort(t))
				s.ServeArgs = []string{"--metrics-listen", port}
				metricsURL[i] = "http://127.0.0.1:" + port + "/metrics"
			}
			a.Start()
			b.Start()
			start := time.Now()
			out, err := exec.Command(py, "-c", roamWriterScript, a.URI("roam"), b.URI("roam"), rounds).CombinedOutput()
			if err != nil || !strings.HasPrefix(string(out), "ok ") {
				t.Fatalf("writer: %v\n%s", err, out)
			}
			t.Logf("%s: %s rounds (a hand-off each) in %v", backend, rounds, time.Since(start))
			for _, s := range []*Server{a, b} {
				if n := strings.Count(s.logText(), "handed off"); n == 0 {
					t.Errorf("%s's log shows no hand-off", s.Addr)
				}
			}
			// The last round wrote on b: b owns the volume and exports
			// its gauges, a (a standby) does not.
			const gauge = `hlfs_volume_stored_bytes{volume="roam"}`
			pollMetrics(t, metricsURL[1], func(text string) bool { return strings.Contains(text, gauge) })
			if text := pollMetrics(t, metricsURL[0], func(string) bool { return true }); strings.Contains(text, gauge) {
				t.Errorf("the standby exports the owner's volume gauges:\n%s", text)
			}
			b.Stop()
			a.Stop()
			a.Fsck("roam")
		})
	}
}

// waitLog polls s's log until it contains substr or the deadline passes.
func waitLog(s *Server, substr string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(s.logPath); err == nil && strings.Contains(string(b), substr) {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return false
}

// TestRoamingOwnerKilledDuringHandOff kills the owner's serve (-9) the
// moment it logs that a hand-off was requested, three times, each time from
// the other side: the standby's write waits for the dead owner's lease
// (another host by name: its pid cannot be checked) and succeeds; every
// write flushed before, on either side, reads back; fsck is clean.
func TestRoamingOwnerKilledDuringHandOff(t *testing.T) {
	Begin(t, "qemu-io")
	requireHLFS(t)
	a, b := roamServers(t, "local", Volume{Name: "vk", Size: 8 << 20}, "--lease", "2s")
	a.Start()
	b.Start()
	owner, standby := a, b
	var written []string // read commands that must pass at the end
	for round := 0; round < 3; round++ {
		p1, p2 := 0x11+2*round, 0x12+2*round
		off1, off2 := 2*round<<20, (2*round+1)<<20
		qemuIO(t, owner.URI("vk"), "write -P "+strconv.Itoa(p1)+" "+strconv.Itoa(off1)+" 1M", "flush")
		written = append(written, "read -P "+strconv.Itoa(p1)+" "+strconv.Itoa(off1)+" 1M")
		done := make(chan bool, 1)
		var out string
		t0 := time.Now()
		go func() {
			var ok bool
			out, ok = tryQemuIO(standby.URI("vk"), "write -P "+strconv.Itoa(p2)+" "+strconv.Itoa(off2)+" 1M", "flush")
			done <- ok
		}()
		if !waitLog(owner, "hand-off requested", 20*time.Second) {
			t.Fatalf("round %d: the owner never logged a hand-off request", round)
		}
		owner.Kill()
		handedOff := strings.Contains(owner.logTail(), "handed off")
		if !<-done {
			t.Fatalf("round %d: the standby's write after the owner died failed:\n%s", round, out)
		}
		written = append(written, "read -P "+strconv.Itoa(p2)+" "+strconv.Itoa(off2)+" 1M")
		t.Logf("round %d: the standby's write took %v (the hand-off had completed before the kill: %v)",
			round, time.Since(t0).Round(time.Millisecond), handedOff)
		qemuIO(t, standby.URI("vk"), written...)
		owner.Start() // a standby now
		owner, standby = standby, owner
	}
	qemuIO(t, standby.URI("vk"), written...)
	standby.Stop()
	owner.Stop()
	owner.Fsck("vk")
}

// TestRoamingOwnerUnreachable: the owner listens on a wildcard address, so
// its lock names it by its host name, host-a, which does not resolve: the
// hand-off request cannot be sent. The standby's write then waits for the
// lease: with the owner alive it fails after the take-over timeout (two
// leases), and nothing of it reaches the volume; once the owner is killed,
// it succeeds after the lease, and everything the owner flushed is there.
func TestRoamingOwnerUnreachable(t *testing.T) {
	Begin(t, "qemu-io")
	requireHLFS(t)
	a, b := roamServers(t, "local", Volume{Name: "vu", Size: 4 << 20}, "--lease", "2s")
	a.Addr = "0.0.0.0:" + strconv.Itoa(freePort(t))
	a.Start()
	b.Start()
	qemuIO(t, a.URI("vu"), "write -P 0x33 0 1M", "flush")
	t0 := time.Now()
	out, ok := tryQemuIO(b.URI("vu"), "write -P 0x44 1M 1M")
	if ok {
		t.Fatalf("the standby's write succeeded with the owner alive and unreachable:\n%s", out)
	}
	t.Logf("the standby's write failed after %v: %s", time.Since(t0).Round(time.Millisecond), strings.TrimSpace(out))
	if !strings.Contains(b.logTail(), "asking the owner to hand over failed") {
		t.Errorf("the standby's log does not say the request failed")
	}
	qemuIO(t, a.URI("vu"), "read -P 0x33 0 1M", "read -P 0 1M 1M", "write -P 0x55 2M 1M", "flush")
	a.Kill()
	t0 = time.Now()
	qemuIO(t, b.URI("vu"), "write -P 0x44 1M 1M", "flush")
	t.Logf("with the owner dead the standby's write took %v", time.Since(t0).Round(time.Millisecond))
	qemuIO(t, b.URI("vu"), "read -P 0x33 0 1M", "read -P 0x44 1M 1M", "read -P 0x55 2M 1M")
	b.Stop()
	b.Fsck("vu")
}
