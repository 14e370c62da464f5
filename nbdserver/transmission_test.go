package nbdserver

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// oneExport serves a fresh 1 MiB export "v" and returns it.
func oneExport(t *testing.T, info ExportInfo, opts Options) (*testServer, *memExport) {
	t.Helper()
	cat := newCatalog()
	e := newMemExport(1 << 20)
	cat.add("v", e, info)
	return startServer(t, cat, opts), e
}

// forBothReplyModes runs f with simple and with structured replies.
func forBothReplyModes(t *testing.T, f func(t *testing.T, structured bool)) {
	for _, structured := range []bool{false, true} {
		t.Run(fmt.Sprintf("structured=%v", structured), func(t *testing.T) { f(t, structured) })
	}
}

func pattern(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i*7)
	}
	return p
}

func TestReadWrite(t *testing.T) {
	forBothReplyModes(t, func(t *testing.T, structured bool) {
		ts, e := oneExport(t, ExportInfo{}, Options{})
		c := connect(t, ts, "v", structured, false)
		p := pattern(64<<10, 3)
		mustOK(t, c.writeAt(4096, p, 0))
		if !bytes.Equal(e.bytes(4096, int64(len(p))), p) {
			t.Fatalf("export content differs")
		}
		rep := mustOK(t, c.read(4096, uint32(len(p))))
		if !bytes.Equal(rep.data, p) {
			t.Fatalf("read back differs")
		}
		if structured && rep.chunks != 1 {
			t.Fatalf("read in %d chunks, want 1", rep.chunks)
		}
		// Unaligned, and holes read as zeros.
		rep = mustOK(t, c.read(4096-3, 10))
		if !bytes.Equal(rep.data, append([]byte{0, 0, 0}, p[:7]...)) {
			t.Fatalf("unaligned read %v", rep.data)
		}
		// The very end of the export.
		mustOK(t, c.writeAt(1<<20-1, []byte{9}, 0))
		if rep := mustOK(t, c.read(1<<20-1, 1)); rep.data[0] != 9 {
			t.Fatalf("last byte %d", rep.data[0])
		}
	})
}

func TestFUAReachesExport(t *testing.T) {
	ts, e := oneExport(t, ExportInfo{}, Options{})
	c := connect(t, ts, "v", false, false)
	mustOK(t, c.writeAt(0, []byte("a"), 0))
	mustOK(t, c.writeAt(0, []byte("b"), cmdFlagFUA))
	mustOK(t, c.cmd(cmdTrim, cmdFlagFUA, 0, 4096))
	mustOK(t, c.cmd(cmdWriteZeroes, cmdFlagFUA|cmdFlagNoHole, 0, 4096))
	mustOK(t, c.cmd(cmdFlush, 0, 0, 0))
	want := []memCall{
		{op: "write", off: 0, n: 1},
		{op: "write", off: 0, n: 1, fua: true},
		{op: "zero", off: 0, n: 4096, fua: true, punch: true},
		{op: "zero", off: 0, n: 4096, fua: true},
		{op: "flush"},
	}
	if got := e.calls(); !slices.Equal(got, want) {
		t.Fatalf("calls\n%+v\nwant\n%+v", got, want)
	}
}

func TestTrimAndWriteZeroes(t *testing.T) {
	forBothReplyModes(t, func(t *testing.T, structured bool) {
		ts, e := oneExport(t, ExportInfo{}, Options{})
		c := connect(t, ts, "v", structured, false)
		mustOK(t, c.writeAt(0, bytes.Repeat([]byte{0xab}, 64<<10), 0))

		mustOK(t, c.cmd(cmdTrim, 0, 0, 8192))
		if e.allocated(0) || e.allocated(4096) || !e.allocated(8192) {
			t.Fatalf("trim did not punch exactly [0, 8K)")
		}
		mustOK(t, c.cmd(cmdWriteZeroes, cmdFlagNoHole, 8192, 8192))
		if !e.allocated(8192) {
			t.Fatalf("WRITE_ZEROES with NO_HOLE punched")
		}
		mustOK(t, c.cmd(cmdWriteZeroes, 0, 16384, 8192))
		if e.allocated(16384) {
			t.Fatalf("WRITE_ZEROES without NO_HOLE did not punch")
		}
		rep := mustOK(t, c.read(0, 24576))
		if !bytes.Equal(rep.data, make([]byte, 24576)) {
			t.Fatalf("zeroed range does not read as zeros")
		}
		if rep := mustOK(t, c.read(24576, 1)); rep.data[0] != 0xab {
			t.Fatalf("zeroing went too far")
		}
		calls := e.calls()
		punches := []bool{}
		for _, call := range calls {
			if call.op == "zero" {
				punches = append(punches, call.punch)
			}
		}
		if !slices.Equal(punches, []bool{true, false, true}) {
			t.Fatalf("punch flags %v", punches)
		}
	})
}

func TestInvalidRequestsKeepConnectionUsable(t *testing.T) {
	forBothReplyModes(t, func(t *testing.T, structured bool) {
		ts, e := oneExport(t, ExportInfo{}, Options{MaxPayload: 1 << 20})
		c := connect(t, ts, "v", structured, false)
		const size = 1 << 20
		tooBigRead := errnoINVAL
		if structured {
			tooBigRead = errnoOVERFLOW
		}
		tests := []struct {
			name    string
			req     request
			payload int
			want    uint32
		}{
			{"read past end", request{typ: cmdRead, offset: size - 1, length: 2}, 0, errnoINVAL},
			{"read offset past end", request{typ: cmdRead, offset: size + 1, length: 0}, 0, errnoINVAL},
			{"read offset overflow", request{typ: cmdRead, offset: math.MaxUint64, length: 1}, 0, errnoINVAL},
			{"read too big", request{typ: cmdRead, length: 1<<20 + 1}, 0, tooBigRead},
			{"read bad flag", request{typ: cmdRead, flags: cmdFlagNoHole, length: 1}, 0, errnoINVAL},
			{"write past end", request{typ: cmdWrite, offset: size - 1, length: 2}, 2, errnoNOSPC},
			{"write bad flag", request{typ: cmdWrite, flags: cmdFlagDF, length: 3}, 3, errnoINVAL},
			{"write too big", request{typ: cmdWrite, length: 1<<20 + 512}, 1<<20 + 512, errnoINVAL},
			{"write zeroes past end", request{typ: cmdWriteZeroes, offset: size, length: 1}, 0, errnoNOSPC},
			{"write zeroes fast", request{typ: cmdWriteZeroes, flags: cmdFlagFastZero, length: 1}, 0, errnoINVAL},
			{"trim past end", request{typ: cmdTrim, offset: 4096, length: size}, 0, errnoINVAL},
			{"cache past end", request{typ: cmdCache, offset: size, length: 1}, 0, errnoINVAL},
			{"flush bad flag", request{typ: cmdFlush, flags: cmdFlagReqOne}, 0, errnoINVAL},
			{"block status not negotiated", request{typ: cmdBlockStatus, length: 512}, 0, errnoINVAL},
			{"unknown command", request{typ: 8, length: 4096}, 0, errnoINVAL},
			{"unknown command 2", request{typ: 0xffff, flags: 0xffff}, 0, errnoINVAL},
		}
		for _, tt := range tests {
			tt.req.cookie = newCookie()
			rep := c.do(tt.req, bytes.Repeat([]byte{0xee}, tt.payload))
			if rep.errno != tt.want {
				t.Fatalf("%s: %s, want %s", tt.name, errnoName(rep.errno), errnoName(tt.want))
			}
			if structured && rep.msg == "" {
				t.Errorf("%s: structured error without message", tt.name)
			}
			if rep.data != nil {
				t.Fatalf("%s: error reply with data", tt.name)
			}
			// Still in sync.
			mustOK(t, c.read(0, 512))
		}
		if len(e.calls()) != 0 {
			t.Fatalf("invalid requests reached the export: %+v", e.calls())
		}
		if !bytes.Equal(e.bytes(size-2, 2), []byte{0, 0}) {
			t.Fatalf("out of range write touched the export")
		}
	})
}

func TestZeroLengthRequests(t *testing.T) {
	forBothReplyModes(t, func(t *testing.T, structured bool) {
		ts, _ := oneExport(t, ExportInfo{}, Options{})
		c := connect(t, ts, "v", structured, false)
		if rep := mustOK(t, c.read(1<<20, 0)); len(rep.data) != 0 {
			t.Fatalf("zero read returned %d bytes", len(rep.data))
		}
		mustOK(t, c.writeAt(1<<20, nil, 0))
		mustOK(t, c.cmd(cmdTrim, 0, 0, 0))
		mustOK(t, c.cmd(cmdWriteZeroes, 0, 0, 0))
		mustOK(t, c.cmd(cmdCache, 0, 0, 0))
		mustOK(t, c.read(0, 1))
	})
}

func TestOversizedWriteCloses(t *testing.T) {
	ts, _ := oneExport(t, ExportInfo{}, Options{MaxPayload: 1 << 20})
	c := connect(t, ts, "v", false, false)
	c.send(request{typ: cmdWrite, cookie: 1, length: 2<<20 + 1}, make([]byte, 4096))
	c.expectClosed()
}

func TestCache(t *testing.T) {
	ts, e := oneExport(t, ExportInfo{}, Options{})
	c := connect(t, ts, "v", true, false)
	mustOK(t, c.cmd(cmdCache, 0, 0, 1<<20))
	mustErr(t, c.cmd(cmdCache, 0, 1, 1<<20), errnoINVAL)
	if len(e.calls()) != 0 {
		t.Fatalf("cache modified the export")
	}
}

func TestReadOnlyExport(t *testing.T) {
	forBothReplyModes(t, func(t *testing.T, structured bool) {
		ts, e := oneExport(t, ExportInfo{ReadOnly: true}, Options{})
		c := connect(t, ts, "v", structured, false)
		mustErr(t, c.writeAt(0, []byte("nope"), 0), errnoPERM)
		mustErr(t, c.writeAt(0, []byte("nope"), cmdFlagFUA), errnoPERM)
		mustErr(t, c.cmd(cmdTrim, 0, 0, 4096), errnoPERM)
		mustErr(t, c.cmd(cmdWriteZeroes, 0, 0, 4096), errnoPERM)
		mustOK(t, c.cmd(cmdFlush, 0, 0, 0))
		mustOK(t, c.read(0, 4096))
		for _, call := range e.calls() {
			if call.op != "flush" {
				t.Fatalf("read-only export modified: %+v", call)
			}
		}
	})
}

func TestExportErrors(t *testing.T) {
	forBothReplyModes(t, func(t *testing.T, structured bool) {
		ts, e := oneExport(t, ExportInfo{}, Options{})
		var failWith atomic.Pointer[error]
		e.fail = func(op string, off, n int64) error {
			if p := failWith.Load(); p != nil && op != "allocation" {
				return *p
			}
			return nil
		}
		c := connect(t, ts, "v", structured, false)
		set := func(err error) { failWith.Store(&err) }

		set(errors.New("boom"))
		mustErr(t, c.read(0, 4096), errnoIO)
		mustErr(t, c.writeAt(0, []byte("x"), 0), errnoIO)
		mustErr(t, c.cmd(cmdFlush, 0, 0, 0), errnoIO)
		set(fmt.Errorf("log full: %w", ErrNoSpace))
		mustErr(t, c.writeAt(0, []byte("x"), 0), errnoNOSPC)
		mustErr(t, c.cmd(cmdWriteZeroes, 0, 0, 512), errnoNOSPC)
		set(fmt.Errorf("degraded: %w", ErrReadOnly))
		mustErr(t, c.cmd(cmdTrim, 0, 0, 512), errnoPERM)
		failWith.Store(nil)
		mustOK(t, c.read(0, 4096))
	})
}

func TestConcurrentRequestsReplyOutOfOrder(t *testing.T) {
	ts, e := oneExport(t, ExportInfo{}, Options{})
	release := make(chan struct{})
	e.hook = func(op string, off, n int64) {
		if op == "read" && off == 0 {
			<-release
		}
	}
	c := connect(t, ts, "v", true, false)
	mustOK(t, c.writeAt(8192, []byte("second"), 0))
	slow := request{typ: cmdRead, cookie: 1, offset: 0, length: 4096}
	fast := request{typ: cmdRead, cookie: 2, offset: 8192, length: 6}
	c.send(slow, nil)
	c.send(fast, nil)
	rep := mustOK(t, c.readReply())
	if rep.cookie != 2 || string(rep.data) != "second" {
		t.Fatalf("first reply cookie %d data %q, want the unblocked read", rep.cookie, rep.data)
	}
	close(release)
	if rep := mustOK(t, c.readReply()); rep.cookie != 1 || len(rep.data) != 4096 {
		t.Fatalf("second reply cookie %d", rep.cookie)
	}
}

func TestConcurrencyLimits(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		reqLen   uint32
		wantPeak int32
	}{
		{"requests", Options{MaxRequestsPerConn: 3}, 512, 3},
		{"bytes", Options{MaxRequestsPerConn: 64, MaxInFlightBytes: 256 << 10}, 64 << 10, 4},
		{"single request over budget", Options{MaxInFlightBytes: 1}, 64 << 10, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, e := oneExport(t, ExportInfo{}, tt.opts)
			cur, peak, gate := holdOps(e, "read")
			c := connect(t, ts, "v", false, false)
			const n = 12
			go func() {
				for i := range n {
					c.send(request{typ: cmdRead, cookie: uint64(i), offset: uint64(i) * 4096, length: tt.reqLen}, nil)
				}
			}()
			// Wait until the limit is reached, then make sure nothing more
			// gets in while the export holds every request.
			deadline := time.Now().Add(10 * time.Second)
			for cur.Load() < tt.wantPeak && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond)
			close(gate)
			seen := map[uint64]bool{}
			for range n {
				rep := mustOK(t, c.readReply())
				seen[rep.cookie] = true
			}
			if len(seen) != n {
				t.Fatalf("%d distinct replies", len(seen))
			}
			if got := peak.Load(); got != tt.wantPeak {
				t.Fatalf("peak concurrency %d, want %d", got, tt.wantPeak)
			}
		})
	}
}

func TestManyConcurrentWritesAndReads(t *testing.T) {
	ts, e := oneExport(t, ExportInfo{}, Options{})
	c := connect(t, ts, "v", true, false)
	const n = 200
	go func() {
		for i := range n {
			p := bytes.Repeat([]byte{byte(i)}, 4096)
			c.send(request{typ: cmdWrite, cookie: uint64(i), offset: uint64(i%256) * 4096, length: 4096}, p)
		}
	}()
	for range n {
		mustOK(t, c.readReply())
	}
	for i := range 200 {
		if got := e.bytes(int64(i)*4096, 4096); !bytes.Equal(got, bytes.Repeat([]byte{byte(i)}, 4096)) {
			t.Fatalf("block %d wrong", i)
		}
	}
}

func TestDisconnectFinishesInFlight(t *testing.T) {
	ts, e := oneExport(t, ExportInfo{}, Options{})
	release := make(chan struct{})
	e.hook = func(op string, off, n int64) {
		if op == "write" {
			<-release
		}
	}
	c := connect(t, ts, "v", false, false)
	for i := range 4 {
		c.send(request{typ: cmdWrite, cookie: uint64(i), offset: uint64(i) * 512, length: 512}, bytes.Repeat([]byte{1}, 512))
	}
	c.disconnect()
	time.Sleep(50 * time.Millisecond) // let the server see DISC first
	close(release)
	for range 4 {
		mustOK(t, c.readReply())
	}
	c.expectClosed()
	if !bytes.Equal(e.bytes(0, 2048), bytes.Repeat([]byte{1}, 2048)) {
		t.Fatalf("writes before DISC were not applied")
	}
}

func TestCheckRequestTable(t *testing.T) {
	s := &session{size: 4096, structured: true, meta: []metaContext{{id: baseAllocCtxID}}}
	ro := &session{size: 4096, info: ExportInfo{ReadOnly: true}}
	tests := []struct {
		s    *session
		req  request
		want uint32
	}{
		{s, request{typ: cmdRead, length: 4096}, 0},
		{s, request{typ: cmdRead, flags: cmdFlagDF | cmdFlagFUA, length: 4096}, 0},
		{ro, request{typ: cmdRead, flags: cmdFlagDF, length: 1}, errnoINVAL}, // DF needs structured
		{s, request{typ: cmdRead, offset: 4096, length: 0}, 0},
		{s, request{typ: cmdRead, offset: 4097, length: 0}, errnoINVAL},
		{s, request{typ: cmdRead, length: 8192}, errnoOVERFLOW},
		{ro, request{typ: cmdRead, length: 8192}, errnoINVAL},
		{s, request{typ: cmdWrite, offset: 1, length: 4096}, errnoNOSPC},
		{ro, request{typ: cmdWrite, offset: 1, length: 4096}, errnoPERM},
		{ro, request{typ: cmdWrite, flags: 1 << 9}, errnoINVAL},
		{s, request{typ: cmdTrim, offset: 4095, length: 2}, errnoINVAL},
		{s, request{typ: cmdWriteZeroes, flags: cmdFlagNoHole | cmdFlagFUA, length: 4096}, 0},
		{s, request{typ: cmdWriteZeroes, offset: 4095, length: 2}, errnoNOSPC},
		{s, request{typ: cmdBlockStatus, flags: cmdFlagReqOne, length: 4096}, 0},
		{s, request{typ: cmdBlockStatus, length: 0}, errnoINVAL},
		{s, request{typ: cmdBlockStatus, offset: 1, length: 4096}, errnoINVAL},
		{ro, request{typ: cmdBlockStatus, length: 1}, errnoINVAL},
		{s, request{typ: cmdFlush, flags: cmdFlagFUA}, 0},
		{s, request{typ: cmdCache, length: 4096}, 0},
		{s, request{typ: 9}, errnoINVAL},
	}
	for i, tt := range tests {
		if got, _ := checkRequest(tt.s, tt.req, 4096); got != tt.want {
			t.Errorf("%d %+v: %s, want %s", i, tt.req, errnoName(got), errnoName(tt.want))
		}
	}
}

// holdOps makes every call of op on e wait until gate is closed; cur
// counts the calls waiting, peak the most that waited at once.
func holdOps(e *memExport, op string) (cur, peak *atomic.Int32, gate chan struct{}) {
	cur, peak, gate = new(atomic.Int32), new(atomic.Int32), make(chan struct{})
	e.hook = func(o string, off, n int64) {
		if o != op {
			return
		}
		v := cur.Add(1)
		for {
			p := peak.Load()
			if v <= p || peak.CompareAndSwap(p, v) {
				break
			}
		}
		<-gate
		cur.Add(-1)
	}
	return cur, peak, gate
}
