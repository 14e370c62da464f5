package nbdserver

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// dialFrom connects to ts from the local IP address from (any of
// 127.0.0.0/8 works on Linux).
func dialFrom(t testing.TB, ts *testServer, from string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// expectRefused checks that c gets the greeting and an NBD_REP_ERR_POLICY
// naming why to its first option, then an ACK to ABORT and a close.
func (c *testClient) expectRefused(why string) {
	c.t.Helper()
	c.greet(clientFlagFixedNewstyle | clientFlagNoZeroes)
	c.expectOptError(optGo, infoData("a"), repErrPolicy, why)
	c.expectOptError(optList, nil, repErrPolicy, why)
	c.sendOpt(optAbort, nil)
	if r := c.readOptReply(optAbort); r.typ != repAck {
		c.t.Fatalf("ABORT: %#x", r.typ)
	}
	c.expectClosed()
}

func TestMaxConnsRefusesWithAnNBDError(t *testing.T) {
	cat, _, _ := twoExports()
	ts := startServer(t, cat, Options{MaxConns: 2})
	first := connect(t, ts, "a", false, false)
	second := dial(t, ts) // negotiating counts too
	second.greet(clientFlagFixedNewstyle)

	dial(t, ts).expectRefused("too many connections: the server serves at most 2")
	// NBD_OPT_EXPORT_NAME cannot carry the error: closed.
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle)
	c.sendOpt(optExportName, []byte("a"))
	c.expectClosed()

	mustOK(t, first.read(0, 1))
	first.disconnect()
	first.expectClosed()
	// The slot is free again once the server noticed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dial(t, ts)
		c.greet(clientFlagFixedNewstyle)
		c.sendOpt(optGo, infoData("a"))
		if r := c.readOptReply(optGo); r.typ == repInfo {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection slot never freed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHandshakeFloodFromOneAddress: sockets from one address that never
// finish the handshake take at most MaxHandshakesPerAddr slots; clients
// from other addresses are still served, and the flooding address is told
// why it is refused.
func TestHandshakeFloodFromOneAddress(t *testing.T) {
	cat, _, _ := twoExports()
	ts := startServer(t, cat, Options{MaxConns: 8, MaxHandshakesPerAddr: 2})
	var flood []net.Conn
	for range 20 {
		flood = append(flood, dialFrom(t, ts, "127.0.0.2"))
	}
	// The first two negotiate (greeting, then nothing), the next MaxConns
	// wait (nothing), the next maxRefusingPerAddr are being refused
	// (greeting, then an error to their first option), the rest are
	// closed at once.
	var greeted, silent, closed []int
	for i, nc := range flood {
		nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		var b [1]byte
		switch _, err := nc.Read(b[:]); {
		case err == nil:
			greeted = append(greeted, i)
		case isTimeout(err):
			silent = append(silent, i)
		default:
			closed = append(closed, i)
		}
	}
	if len(greeted) != 2+maxRefusingPerAddr || len(silent) != 8 || len(closed) != 20-len(greeted)-len(silent) ||
		greeted[1] != 1 || silent[0] != 2 {
		t.Fatalf("flood connections greeted %v, waiting %v, closed %v", greeted, silent, closed)
	}

	// Another address is served while the flood holds its sockets.
	c := newTestClient(t, dialFrom(t, ts, "127.0.0.1"))
	c.greet(clientFlagFixedNewstyle | clientFlagNoZeroes)
	c.goExport("a")
	mustOK(t, c.read(0, 512))

	// A negotiating flood socket goes: the first waiting one is greeted.
	flood[0].Close()
	first := flood[silent[0]]
	first.SetReadDeadline(time.Now().Add(5 * time.Second))
	var g [18]byte
	if _, err := io.ReadFull(first, g[:]); err != nil || string(g[:8]) != "NBDMAGIC" {
		t.Fatalf("the first waiting connection: %q %v", g, err)
	}
	// A refused one learns why (its first greeting byte was read above).
	r := newTestClient(t, flood[greeted[2]])
	r.readFull(g[:17])
	r.write([]byte{0, 0, 0, 1})
	r.expectOptError(optGo, infoData("a"), repErrPolicy,
		"too many connections from 127.0.0.2 still negotiating (at most 2, and 8 waiting)")

	// Once the flood is gone, the address is served again.
	for _, nc := range flood {
		nc.Close()
	}
	deadline := time.Now().Add(refuseTimeout + 5*time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatal("the flood's slots were never freed")
		}
		nc := dialFrom(t, ts, "127.0.0.2")
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(nc, g[:]); err != nil {
			time.Sleep(20 * time.Millisecond)
			continue // refused at once: the flood's refusals still run
		}
		late := newTestClient(t, nc)
		late.write([]byte{0, 0, 0, 1})
		late.sendOpt(optGo, infoData("a"))
		if r := late.readOptReply(optGo); r.typ == repInfo {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBurstFromOneAddressWaits: more clients from one address than
// MaxHandshakesPerAddr at once are all served, in turn.
func TestBurstFromOneAddressWaits(t *testing.T) {
	cat, _, _ := twoExports()
	ts := startServer(t, cat, Options{MaxConns: 64, MaxHandshakesPerAddr: 2})
	errs := make(chan string, 40)
	for range 40 {
		go func() {
			nc, err := net.Dial("tcp", ts.addr)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(20 * time.Second))
			var b [20]byte
			if _, err := io.ReadFull(nc, b[:18]); err != nil {
				errs <- "greeting: " + err.Error()
				return
			}
			s := (&stream{}).flags(clientFlagFixedNewstyle).opt(optList, nil)
			if _, err := nc.Write(s.b); err != nil {
				errs <- err.Error()
				return
			}
			if _, err := io.ReadFull(nc, b[:]); err != nil {
				errs <- "LIST: " + err.Error()
				return
			}
			errs <- fmt.Sprintf("reply %#x", binary.BigEndian.Uint32(b[12:16]))
		}()
	}
	for range 40 {
		if got := <-errs; got != fmt.Sprintf("reply %#x", repServer) {
			t.Errorf("a client of the burst: %s", got)
		}
	}
}
