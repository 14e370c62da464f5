package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLimitConnections checks serve's connection limits with its defaults
// (--max-connections 128, --max-handshakes-per-address 16):
//
//   - nbdinfo from an address with 16 sockets negotiating waits, and is
//     served when they go;
//   - with 128 clients connected (in transmission), the 129th, qemu-io,
//     gets an NBD error that says why, and the 128 are still served;
//   - 500 sockets from 127.0.0.2 that never finish the handshake do not
//     lock out nbdinfo from 127.0.0.1 (loopback: any 127.0.0.0/8 address
//     works on Linux).
func TestLimitConnections(t *testing.T) {
	Begin(t, "qemu-io")
	requireHLFS(t)
	s := NewServer(t, Volume{Name: "limvol", Size: 64 << 20})
	host, port, _ := net.SplitHostPort(s.Addr)
	qemuOpen := []string{"--image-opts", "driver=nbd,host=" + host + ",port=" + port + ",export=limvol", "-c", "read 0 4k"}

	// 16 sockets from 127.0.0.1 that do not negotiate hold that address's
	// handshake slots: nbdinfo from there waits its turn (rather than
	// being refused), and is served once they go.
	var idle []net.Conn
	for range 16 {
		nc, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, nc)
	}
	var wg sync.WaitGroup
	failed := make(chan string, 8)
	var finished atomic.Int32
	for range 8 {
		wg.Go(func() {
			out, err := exec.Command("nbdinfo", "--size", s.URI("limvol")).CombinedOutput()
			if err != nil {
				failed <- fmt.Sprintf("%v: %s", err, out)
			}
			finished.Add(1)
		})
	}
	time.Sleep(500 * time.Millisecond)
	if n := finished.Load(); n != 0 {
		t.Errorf("%d nbdinfo finished while 16 sockets of their address were negotiating", n)
	}
	for _, nc := range idle {
		nc.Close()
	}
	wg.Wait()
	close(failed)
	for f := range failed {
		t.Errorf("nbdinfo that waited: %s", f)
	}
	if !strings.Contains(s.logTail(), "connections wait for others from the same address to negotiate") {
		t.Errorf("no wait logged:\n%s", s.logTail())
	}

	// 128 clients connected (in transmission), then one more.
	clients := make([]*rawClient, 128)
	for i := range clients {
		clients[i] = dialRaw(t, "tcp", s.Addr)
		clients[i].goExport(t, "limvol")
	}
	t0 := time.Now()
	out := refused(t, "qemu-io", qemuOpen...)
	if !strings.Contains(out, "server reported: hlfs: too many connections: the server serves at most 128 (hlfs serve --max-connections)") {
		t.Errorf("the 129th client does not learn why:\n%s", out)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("the refusal took %v", d)
	}
	for _, c := range clients {
		if _, errno := c.request(t, 0, 4096); errno != 0 {
			t.Fatalf("a connected client got errno %d", errno)
		}
		c.nc.Close()
	}

	// A handshake flood from one address.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	var flood []net.Conn
	defer func() {
		for _, nc := range flood {
			nc.Close()
		}
	}()
	for range 500 {
		nc, err := d.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatalf("flood connection %d: %v", len(flood), err)
		}
		flood = append(flood, nc)
	}
	t0 = time.Now()
	cmd := exec.Command("nbdinfo", "--size", s.URI("limvol"))
	done := make(chan struct{})
	var info []byte
	var err error
	go func() {
		info, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	if err != nil || strings.TrimSpace(string(info)) != "67108864" {
		t.Fatalf("nbdinfo from 127.0.0.1 during a handshake flood from 127.0.0.2: %v after %v\n%s", err, time.Since(t0), info)
	}
	t.Logf("nbdinfo during the flood: %v", time.Since(t0).Round(time.Millisecond))
	if log := s.logTail(); !strings.Contains(log, "too many connections from 127.0.0.2 still negotiating (at most 16, and 128 waiting)") {
		t.Errorf("the flood is not logged:\n%s", log)
	}
	s.Stop()
}
