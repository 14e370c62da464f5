package nbdserver

import (
	"errors"
	"testing"
	"time"
)

// TestObserveReportsEveryRequest checks the RequestEvent of each kind of
// request, answered or refused, and the connection count around them.
func TestObserveReportsEveryRequest(t *testing.T) {
	events := make(chan RequestEvent, 16)
	boom := errors.New("boom")
	cat := newCatalog()
	e := newMemExport(1 << 20)
	e.hook = func(op string, off, n int64) {
		if op == "write" && off == 8192 {
			time.Sleep(20 * time.Millisecond) // a slow request
		}
	}
	e.fail = func(op string, off, n int64) error {
		if op == "read" && off == 4096 {
			return boom
		}
		return nil
	}
	cat.add("v", e, ExportInfo{})
	ts := startServer(t, cat, Options{Observe: func(ev RequestEvent) { events <- ev }})
	if n := ts.Connections(); n != 0 {
		t.Fatalf("Connections() = %d before any client", n)
	}
	c := connect(t, ts, "v", true, true)
	if n := ts.Connections(); n != 1 {
		t.Fatalf("Connections() = %d with one client", n)
	}
	next := func() RequestEvent {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no RequestEvent in 10 s")
			return RequestEvent{}
		}
	}
	for _, tc := range []struct {
		name  string
		do    func()
		op    string
		bytes int64
		err   error // nil, boom or ErrInvalidRequest
	}{
		{"write", func() { mustOK(t, c.writeAt(0, pattern(4096, 1), 0)) }, "write", 4096, nil},
		{"read", func() { mustOK(t, c.read(0, 512)) }, "read", 512, nil},
		{"failed read", func() { mustErr(t, c.read(4096, 512), errnoIO) }, "read", 512, boom},
		{"flush", func() { mustOK(t, c.cmd(cmdFlush, 0, 0, 0)) }, "flush", 0, nil},
		{"trim", func() { mustOK(t, c.cmd(cmdTrim, 0, 0, 8192)) }, "trim", 8192, nil},
		{"zero", func() { mustOK(t, c.cmd(cmdWriteZeroes, 0, 0, 1024)) }, "zero", 1024, nil},
		{"block status", func() { mustOK(t, c.cmd(cmdBlockStatus, 0, 0, 65536)) }, "block_status", 65536, nil},
		{"cache", func() { mustOK(t, c.cmd(cmdCache, 0, 0, 4096)) }, "cache", 4096, nil},
		{"read past the end", func() { mustErr(t, c.read(1<<20, 512), errnoINVAL) }, "read", 512, ErrInvalidRequest},
		{"write past the end", func() { mustErr(t, c.writeAt(1<<20, pattern(512, 2), 0), errnoNOSPC) }, "write", 512, ErrInvalidRequest},
		{"unknown command", func() { mustErr(t, c.cmd(77, 0, 0, 0), errnoINVAL) }, "unknown", 0, ErrInvalidRequest},
		{"slow write", func() { mustOK(t, c.writeAt(8192, pattern(512, 3), 0)) }, "write", 512, nil},
	} {
		tc.do()
		ev := next()
		if ev.Export != "v" || ev.Op != tc.op || ev.Bytes != tc.bytes || !errors.Is(ev.Err, tc.err) || (tc.err == nil) != (ev.Err == nil) {
			t.Errorf("%s: event %+v, want op %s, %d bytes, err %v", tc.name, ev, tc.op, tc.bytes, tc.err)
		}
		if ev.Duration <= 0 {
			t.Errorf("%s: duration %v", tc.name, ev.Duration)
		}
		if tc.name == "slow write" && ev.Duration < 20*time.Millisecond {
			t.Errorf("slow write took %v, observed less than the export's 20ms", ev.Duration)
		}
	}
	c.disconnect()
	deadline := time.Now().Add(10 * time.Second)
	for ts.Connections() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Connections() = %d 10 s after the client left", ts.Connections())
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case ev := <-events:
		t.Fatalf("an event for the disconnect: %+v", ev)
	default:
	}
}
