package nbdserver

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/membudget"
)

// TestBudgetBoundsPayloadsAcrossConnections: with a 256 KiB budget, WRITE
// payloads of 8 connections together never hold more than its request half
// (four 32 KiB writes), although each connection's own limit would let
// all of them in; every write completes once the export lets them go, and
// the budget is empty afterwards.
func TestBudgetBoundsPayloadsAcrossConnections(t *testing.T) {
	budget := membudget.New(256 << 10)
	ts, e := oneExport(t, ExportInfo{}, Options{Budget: budget})
	cur, peak, gate := holdOps(e, "write")
	const conns, perConn, size = 8, 4, 32 << 10
	clients := make([]*testClient, conns)
	for i := range clients {
		clients[i] = connect(t, ts, "v", false, false)
	}
	for i, c := range clients {
		go func() {
			for j := range perConn {
				k := i*perConn + j
				c.send(request{typ: cmdWrite, cookie: uint64(k), offset: uint64(k) * size, length: size},
					bytes.Repeat([]byte{byte(k + 1)}, size))
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for cur.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // nothing more gets in while they are held
	if got := peak.Load(); got != 4 {
		t.Fatalf("%d writes held at once, want 4 (half of a 256 KiB budget)", got)
	}
	if used := budget.Used(); used > 128<<10 {
		t.Fatalf("budget holds %d bytes, over its request half", used)
	}
	close(gate)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perConn {
				mustOK(t, c.readReply())
			}
		}()
	}
	wg.Wait()
	for k := range conns * perConn {
		rep := mustOK(t, clients[0].read(uint64(k)*size, size))
		if !bytes.Equal(rep.data, bytes.Repeat([]byte{byte(k + 1)}, size)) {
			t.Fatalf("write %d reads back differently", k)
		}
	}
	// The last reply may reach the client just before its worker releases.
	waitFor(t, "the budget to empty after every reply", func() bool { return budget.Used() == 0 })
}

// TestBudgetWaitEndsWithTheConnection: a connection waiting for memory
// does not keep Shutdown waiting past its context.
func TestBudgetWaitEndsWithTheConnection(t *testing.T) {
	budget := membudget.New(1 << 20)
	if err := budget.AcquireRequest(t.Context(), 512<<10); err != nil { // all the request half
		t.Fatal(err)
	}
	ts, _ := oneExport(t, ExportInfo{}, Options{Budget: budget})
	c := connect(t, ts, "v", false, false)
	c.send(request{typ: cmdWrite, cookie: 1, length: 4096}, make([]byte, 4096))
	waitFor(t, "the write to wait for memory", func() bool { return budget.Waiters() == 1 })
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	ts.stopped = true
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want the deadline: the write waits for memory", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Shutdown took %v with a connection waiting for memory", d)
	}
	c.expectClosed()
	budget.ReleaseRequest(512 << 10)
	if budget.Used() != 0 {
		t.Fatalf("budget holds %d bytes", budget.Used())
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
