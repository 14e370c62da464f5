package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hlfs/hlfs/hdfsbackend/hdfstest"
)

// HDFS faults under a flushing NBD load (testdata/nbd_writer.py: QD 8, a
// FLUSH every 16 writes, every 7th write FUA). These tests stop and restart
// nodes of the shared mini-cluster through its control channel and leave
// every node running when they end.

// faultLoad is the load of the fault tests: a 64 MiB volume, writes over
// its first 32 MiB.
const (
	faultVolSize = 64 << 20
	faultSpan    = 32 << 20
)

// TestHDFSDataNodeDiesUnderLoad stops one of the three DataNodes without
// telling the NameNode (as a crash would: it is declared dead only after
// missing heartbeats, ~12 s here), while the writer runs. Every pipeline
// through the dead node fails, and the flushes retry transient failures
// (abandoning the object and writing it again), so writes and flushes must
// keep succeeding: a flush may stall, never fail. Afterwards the volume
// fscks clean and every write reads back.
func TestHDFSDataNodeDiesUnderLoad(t *testing.T) {
	Begin(t, "nbdcopy")
	const vol = "dnvol"
	s := newHDFSServer(t, nil, Volume{Name: vol, Size: faultVolSize})
	dnDown := false
	t.Cleanup(func() {
		// Keep the cluster whole for the tests after this one.
		if dnDown {
			if _, err := hdfstest.Control("restart-datanode 1"); err != nil {
				t.Errorf("restarting DataNode 1: %v", err)
			}
		}
	})
	s.Start()
	logPath := filepath.Join(t.TempDir(), "writes.log")
	const writes = 3000 // ~30 flushes before the stop, the rest during and after it
	w := startWriter(t, s.URI(vol), logPath, faultSpan, 11, writes)
	w.waitFlushes(t, 30, 60*time.Second)
	p := watchFlushes(t, logPath)
	stopped := time.Now()
	dnDown = true
	hdfstest.MustControl(t, "stop-datanode 1 nomark")
	code := w.wait(t, 3*time.Minute)
	p.finish()
	t.Logf("writer done %v after the DataNode stopped: exit %d: %s; %s",
		time.Since(stopped).Round(time.Millisecond), code, strings.TrimSpace(w.stderr.String()), p.since(stopped))
	if code != 0 {
		t.Fatalf("a write or flush failed while a DataNode was down (exit %d):\n%s", code, w.stderr.String())
	}
	if p.maxGap > 25*time.Second {
		t.Errorf("flushes stalled %v, more than the 20 s retry window", p.maxGap)
	}
	hdfstest.MustControl(t, "restart-datanode 1")
	dnDown = false
	segs := s.infoInt(t, vol, "segments")
	s.Stop()
	s.Fsck(vol)
	s.Start()
	verifyWrites(t, s, vol, logPath, faultVolSize)
	s.Stop()
	t.Logf("%d segment objects in HDFS (abandoned attempts included while serving)", segs)
	logServerNotes(t, s)
}

// TestHDFSNameNodeRestartUnderLoad restarts the NameNode while the writer
// runs. Writes are acknowledged from memory; flushes need the NameNode (to
// close a segment and create the next), so they stall until it is back,
// retrying for up to 20 s, or fail cleanly (EIO, the server stays up). The
// test reports which; then a second writer shows that I/O resumed, and
// after a restart of the server every flushed write reads back.
func TestHDFSNameNodeRestartUnderLoad(t *testing.T) {
	Begin(t, "nbdcopy")
	const vol = "nnvol"
	s := newHDFSServer(t, nil, Volume{Name: vol, Size: faultVolSize})
	t.Cleanup(func() {
		if out, err := hdfstest.Control("status"); err != nil || !strings.Contains(out, "namenode=up") {
			if _, err := hdfstest.Control("start-namenode"); err != nil {
				t.Errorf("starting the NameNode: %v", err)
			}
		}
	})
	s.Start()
	logPath := filepath.Join(t.TempDir(), "writes.log")
	w := startWriter(t, s.URI(vol), logPath, faultSpan, 21, 6000)
	w.waitFlushes(t, 30, 60*time.Second)
	p := watchFlushes(t, logPath)
	t0 := time.Now()
	hdfstest.MustControl(t, "restart-namenode")
	t.Logf("NameNode restarted in %v (the control command's time)", time.Since(t0).Round(time.Millisecond))
	code := w.wait(t, 3*time.Minute)
	p.finish()
	stderr := strings.TrimSpace(w.stderr.String())
	switch {
	case code == 0:
		t.Logf("I/O stalled and resumed: the writer finished without an error; %s", p.since(t0))
	case code == 3 && s.Running():
		logServerNotes(t, s)
		t.Fatalf("I/O failed (cleanly, the server stayed up) instead of stalling through the NameNode restart: %s; %s", stderr, p.since(t0))
	default:
		t.Fatalf("writer exit %d (server running: %v): %s", code, s.Running(), stderr)
	}
	if !s.Running() {
		t.Fatalf("the server died during the NameNode restart")
	}
	// I/O resumes on the same server.
	w2 := startWriter(t, s.URI(vol), logPath, faultSpan, 22, 800)
	if code := w2.wait(t, time.Minute); code != 0 {
		t.Fatalf("I/O did not resume after the NameNode came back (exit %d): %s", code, w2.stderr.String())
	}
	t.Logf("after the restart: %s", strings.TrimSpace(w2.stderr.String()))
	verifyWrites(t, s, vol, logPath, faultVolSize)
	s.Stop()
	s.Fsck(vol)
	s.Start()
	verifyWrites(t, s, vol, logPath, faultVolSize)
	s.Stop()
}

// logServerNotes logs the server's warnings and errors (store failures,
// failed requests), to show what a fault did.
func logServerNotes(t *testing.T, s *Server) {
	t.Helper()
	var notes []string
	for _, l := range strings.Split(s.logText(), "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			notes = append(notes, l)
		}
	}
	if len(notes) > 8 {
		notes = append(notes[:4], append([]string{"..."}, notes[len(notes)-4:]...)...)
	}
	t.Logf("server warnings (%d lines shown):\n%s", len(notes), strings.Join(notes, "\n"))
}
