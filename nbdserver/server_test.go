package nbdserver

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"
)

func TestServeUnixAndTCPTogether(t *testing.T) {
	cat, a, _ := twoExports()
	ts := startServer(t, cat, Options{})
	sock := filepath.Join(t.TempDir(), "nbd.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	unixDone := make(chan error, 1)
	go func() { unixDone <- ts.Serve(ul) }()

	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	uc := newTestClient(t, nc)
	uc.greet(clientFlagFixedNewstyle | clientFlagNoZeroes)
	uc.goExport("a")
	mustOK(t, uc.writeAt(0, []byte("via unix"), 0))

	tc := connect(t, ts, "a", false, false)
	if rep := mustOK(t, tc.read(0, 8)); string(rep.data) != "via unix" {
		t.Fatalf("tcp read %q", rep.data)
	}
	if string(a.bytes(0, 8)) != "via unix" {
		t.Fatalf("export content %q", a.bytes(0, 8))
	}
	ts.stop(t)
	if err := <-unixDone; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("unix Serve returned %v", err)
	}
}

func TestGarbageClosesOnlyThatConnection(t *testing.T) {
	cat, _, _ := twoExports()
	ts := startServer(t, cat, Options{})
	good := connect(t, ts, "a", true, false)

	// Garbage instead of client flags and options.
	bad := dial(t, ts)
	bad.greet(clientFlagFixedNewstyle)
	bad.write(bytes.Repeat([]byte{0xde, 0xad}, 100))
	bad.expectClosed()

	// Garbage in the transmission phase.
	bad2 := connect(t, ts, "a", false, false)
	bad2.write(bytes.Repeat([]byte("GARBAGE!"), 10))
	bad2.expectClosed()

	mustOK(t, good.writeAt(0, []byte("still here"), 0))
	if rep := mustOK(t, good.read(0, 10)); string(rep.data) != "still here" {
		t.Fatalf("read %q", rep.data)
	}
	fresh := connect(t, ts, "a", false, false)
	mustOK(t, fresh.read(0, 10))
}

func TestHandshakeTimeout(t *testing.T) {
	cat, _, _ := twoExports()
	ts := startServer(t, cat, Options{HandshakeTimeout: 100 * time.Millisecond})
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle)
	start := time.Now()
	c.expectClosed()
	if time.Since(start) > 3*time.Second {
		t.Fatalf("idle negotiation not timed out")
	}
	// Transmission has no such limit.
	c2 := connect(t, ts, "a", false, false)
	time.Sleep(300 * time.Millisecond)
	mustOK(t, c2.read(0, 1))
}

func TestShutdownWaitsForInFlight(t *testing.T) {
	ts, e := oneExport(t, ExportInfo{}, Options{})
	entered := make(chan struct{})
	release := make(chan struct{})
	e.hook = func(op string, off, n int64) {
		if op == "write" {
			close(entered)
			<-release
		}
	}
	c := connect(t, ts, "v", false, false)
	idle := connect(t, ts, "v", true, false)
	c.send(request{typ: cmdWrite, flags: cmdFlagFUA, cookie: 7, length: 4}, []byte("data"))
	<-entered

	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	idle.expectClosed() // idle connections close at once
	close(release)
	if rep := mustOK(t, c.readReply()); rep.cookie != 7 {
		t.Fatalf("reply cookie %d", rep.cookie)
	}
	c.expectClosed()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	ts.stopped = true
	if err := <-ts.served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	if string(e.bytes(0, 4)) != "data" {
		t.Fatalf("write lost")
	}
	// After shutdown nothing is accepted, and Serve refuses new listeners.
	if _, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		t.Fatalf("listener still open")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Serve(l); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

func TestShutdownFinishesPartlyReceivedRequest(t *testing.T) {
	ts, e := oneExport(t, ExportInfo{}, Options{})
	c := connect(t, ts, "v", false, false)
	b := make([]byte, requestSize+8)
	putRequest(b, request{typ: cmdWrite, cookie: 3, offset: 100, length: 8})
	copy(b[requestSize:], "complete")
	c.pending[3] = request{typ: cmdWrite, cookie: 3, length: 8}
	c.write(b[:requestSize+3])         // header and part of the payload
	time.Sleep(200 * time.Millisecond) // let the server start reading it

	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	c.write(b[requestSize+3:])
	if rep := mustOK(t, c.readReply()); rep.cookie != 3 {
		t.Fatalf("cookie %d", rep.cookie)
	}
	c.expectClosed()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	ts.stopped = true
	<-ts.served
	if string(e.bytes(100, 8)) != "complete" {
		t.Fatalf("write lost: %q", e.bytes(100, 8))
	}
}

func TestShutdownDeadlineStillWaitsForExport(t *testing.T) {
	ts, e := oneExport(t, ExportInfo{}, Options{})
	entered := make(chan struct{})
	release := make(chan struct{})
	var returned time.Time
	e.hook = func(op string, off, n int64) {
		if op == "read" {
			close(entered)
			<-release
			returned = time.Now()
		}
	}
	c := connect(t, ts, "v", false, false)
	c.send(request{typ: cmdRead, cookie: 1, length: 512}, nil)
	<-entered
	go func() {
		time.Sleep(200 * time.Millisecond)
		close(release)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := ts.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want deadline exceeded", err)
	}
	if returned.IsZero() || time.Now().Before(returned) {
		t.Fatalf("Shutdown returned while an export call was running")
	}
	ts.stopped = true
	<-ts.served
	c.expectClosed()
}
