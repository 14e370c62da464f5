package nbdserver

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// waitHeld polls until cat holds want lookups of name.
func waitHeld(t *testing.T, cat *memCatalog, name string, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for cat.held(name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%q: %d lookups held, want %d", name, cat.held(name), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// A lookup is released at once when it does not start transmission, and
// at the end of the connection when it does.
func TestReleaseAfterUse(t *testing.T) {
	cat, _, _ := twoExports()
	ts := startServer(t, cat, Options{})

	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle | clientFlagNoZeroes)
	c.enableStructured()
	if _, r := c.info(optInfo, "a"); r.typ != repAck {
		t.Fatalf("INFO a: %#x", r.typ)
	}
	if got := cat.held("a"); got != 0 {
		t.Errorf("after INFO: %d held, want 0", got)
	}
	if ctxs, r := c.metaContexts(optListMetaContext, "b", metaBaseAlloc); r.typ != repAck || len(ctxs) != 1 {
		t.Fatalf("LIST_META_CONTEXT b: %#x %v", r.typ, ctxs)
	}
	c.setMeta("a", metaBaseAlloc)
	if a, b := cat.held("a"), cat.held("b"); a != 0 || b != 0 {
		t.Errorf("after meta contexts: a %d b %d held, want 0", a, b)
	}
	if a, b := cat.transmitted("a"), cat.transmitted("b"); a != 0 || b != 0 {
		t.Errorf("probes released as transmitted: a %d b %d", a, b)
	}
	// Failed lookups are not released (memCatalog panics on a stray Release).
	if _, r := c.info(optInfo, "nope"); r.typ != repErrUnknown {
		t.Fatalf("INFO nope: %#x", r.typ)
	}
	c.goExport("a")
	if got := cat.held("a"); got != 1 {
		t.Errorf("in transmission: %d held, want 1", got)
	}
	mustOK(t, c.read(0, 1))
	c.disconnect()
	waitHeld(t, cat, "a", 0)
	if got := cat.transmitted("a"); got != 1 {
		t.Errorf("a released %d times after transmission, want 1", got)
	}

	// NBD_OPT_EXPORT_NAME, then the client just goes away.
	c = dial(t, ts)
	c.greet(clientFlagFixedNewstyle | clientFlagNoZeroes)
	c.sendOpt(optExportName, []byte("b"))
	var b [10]byte
	c.readFull(b[:])
	waitHeld(t, cat, "b", 1)
	c.nc.Close()
	waitHeld(t, cat, "b", 0)
	if got := cat.transmitted("b"); got != 1 {
		t.Errorf("b released %d times after transmission, want 1", got)
	}

	// Shutdown releases the connections it ends (stop checks).
	connect(t, ts, "a", false, false)
	connect(t, ts, "a", false, false)
	waitHeld(t, cat, "a", 2)
	ts.stop(t)
}

// A refused export gets NBD_REP_ERR_POLICY with the catalog's reason, so
// that the client can say why.
func TestRefusedExport(t *testing.T) {
	cat, _, _ := twoExports()
	cat.fail["busy"] = fmt.Errorf("%w: volume busy is in use by pid 7 on host h1", ErrExportRefused)
	ts := startServer(t, cat, Options{})
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle)
	c.enableStructured()
	for _, opt := range []uint32{optInfo, optGo} {
		ei, r := c.info(opt, "busy")
		if r.typ != repErrPolicy || ei.hasExport || string(r.data) != "volume busy is in use by pid 7 on host h1" {
			t.Fatalf("%d busy: reply %#x %q", opt, r.typ, r.data)
		}
	}
	if _, r := c.metaContexts(optListMetaContext, "busy", metaBaseAlloc); r.typ != repErrPolicy || !strings.Contains(string(r.data), "host h1") {
		t.Fatalf("LIST_META_CONTEXT busy: %#x %q", r.typ, r.data)
	}
	c.goExport("a")
	mustOK(t, c.read(0, 1))
}

// The handshake timeout bounds the silence between options, not the whole
// negotiation: a client probing exports one by one for longer than the
// timeout keeps its connection; one that stops talking loses it.
func TestHandshakeTimeoutBetweenOptions(t *testing.T) {
	cat, _, _ := twoExports()
	const timeout = 200 * time.Millisecond
	ts := startServer(t, cat, Options{HandshakeTimeout: timeout})
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle)
	start := time.Now()
	for time.Since(start) < 4*timeout {
		if _, r := c.info(optInfo, "a"); r.typ != repAck {
			t.Fatalf("INFO a: %#x", r.typ)
		}
		time.Sleep(timeout / 4) // the client's pace, well within the timeout
	}
	c.goExport("b")
	mustOK(t, c.read(0, 1))

	idle := dial(t, ts)
	idle.greet(clientFlagFixedNewstyle)
	if _, r := idle.info(optInfo, "a"); r.typ != repAck {
		t.Fatalf("INFO a: %#x", r.typ)
	}
	start = time.Now()
	idle.expectClosed()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("idle negotiation closed after %s", d)
	}
}
