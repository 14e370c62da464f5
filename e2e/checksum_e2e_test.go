package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBitRotReadsFailNeverWrong is the operator's bit-rot check: a 1 MiB
// write, one byte of its payload flipped on disk, the volume served again.
// qemu-io's 4 KiB read of the damaged block fails (EIO) instead of
// returning the wrong byte, its neighbours read right, and hlfs scrub names
// the damaged block and the volume range that reads it.
func TestBitRotReadsFailNeverWrong(t *testing.T) {
	Begin(t, "qemu-io")
	if backendFromEnv() != BackendHLFS {
		t.Skip("hlfs backend only")
	}
	s := NewServer(t, Volume{Name: "rot", Size: 16 << 20})
	uri := s.URI("rot")
	qemuIO(t, uri, "write -P 0x11 0 1M", "flush")
	s.Stop()
	// The payload byte at volume offset 499712+100: record 7 (64 KiB each).
	seg := filepath.Join(s.Dir, "rot", "seg", "0000000000000001")
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	const segHdr, recHdr, rec = 80, 32, 32 + 65536 + 64
	off := int64(segHdr + 7*rec + recHdr + (499712 - 7*65536) + 100)
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil || b[0] != 0x11 {
		t.Fatalf("byte at %d: %#x, %v (the layout assumed here is wrong)", off, b[0], err)
	}
	if _, err := f.WriteAt([]byte{0x13}, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s.Start()
	out, err := exec.Command("qemu-io", "-r", "-f", "raw", uri, "-c", "read -P 0x11 499712 4k").CombinedOutput()
	if err == nil && !strings.Contains(string(out), "Input/output error") {
		t.Fatalf("the read of the damaged block did not fail:\n%s", out)
	}
	if strings.Contains(string(out), "Pattern verification failed") {
		t.Fatalf("the read returned wrong data:\n%s", out)
	}
	qemuIO(t, uri, "read -P 0x11 495616 4k", "read -P 0x11 503808 4k", "read -P 0x11 0 64k")
	s.Stop()
	out, _ = exec.Command(hlfsBinary(t), "--store", s.StoreURI(), "scrub", "rot").CombinedOutput()
	if !strings.Contains(string(out), "read by rot bytes 499712-503807") || !strings.Contains(string(out), "1 damaged range") {
		t.Fatalf("scrub:\n%s", out)
	}
}
