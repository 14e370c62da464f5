package nbdserver

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// This file holds a small NBD client for the tests, written from the spec
// independently of the server's encoders (except putRequest), and helpers
// to run servers.

// testServer is a Server listening on loopback TCP.
type testServer struct {
	*Server
	cat     Catalog
	addr    string
	served  chan error // Serve's result
	stopped bool
}

// startServer serves cat on 127.0.0.1 until the test ends.
func startServer(t testing.TB, cat Catalog, opts Options) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: New(cat, opts), cat: cat, addr: l.Addr().String(), served: make(chan error, 1)}
	go func() { ts.served <- ts.Serve(l) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the server down and checks that Serve returned ErrServerClosed.
func (ts *testServer) stop(t testing.TB) {
	if ts.stopped {
		return
	}
	ts.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-ts.served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	// Every export looked up was released by the time Shutdown returned.
	if mc, ok := ts.cat.(*memCatalog); ok {
		mc.mu.Lock()
		defer mc.mu.Unlock()
		for name, n := range mc.mu.held {
			if n != 0 {
				t.Errorf("export %q: %d lookups not released after Shutdown", name, n)
			}
		}
	}
}

// testClient speaks NBD for tests. Its methods fail the test on any
// protocol surprise.
type testClient struct {
	t          testing.TB
	nc         net.Conn
	br         *bufio.Reader
	structured bool
	// mu guards pending: requests sent and not yet fully answered, by
	// cookie (needed to know whether a simple reply carries data).
	mu      sync.Mutex
	pending map[uint64]request
}

// dial connects to ts and reads the greeting, returning its flags.
func dial(t testing.TB, ts *testServer) *testClient {
	t.Helper()
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	return newTestClient(t, nc)
}

func newTestClient(t testing.TB, nc net.Conn) *testClient {
	c := &testClient{t: t, nc: nc, br: bufio.NewReader(nc), pending: map[uint64]request{}}
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return c
}

// greet reads the server greeting and answers with client flags.
func (c *testClient) greet(cflags uint32) (hflags uint16) {
	c.t.Helper()
	var b [18]byte
	c.readFull(b[:])
	if got := string(b[0:8]); got != "NBDMAGIC" {
		c.t.Fatalf("greeting magic %q", got)
	}
	if got := string(b[8:16]); got != "IHAVEOPT" {
		c.t.Fatalf("greeting option magic %q", got)
	}
	binary.BigEndian.PutUint32(b[:4], cflags)
	c.write(b[:4])
	return binary.BigEndian.Uint16(b[16:18])
}

// connect dials, greets with fixed newstyle + no zeroes, optionally enables
// structured replies and base:allocation, and GOes to export name.
func connect(t testing.TB, ts *testServer, name string, structured, meta bool) *testClient {
	t.Helper()
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle | clientFlagNoZeroes)
	if structured {
		c.enableStructured()
	}
	if meta {
		if ids := c.setMeta(name, metaBaseAlloc); len(ids) != 1 {
			t.Fatalf("SET_META_CONTEXT selected %v", ids)
		}
	}
	c.goExport(name)
	return c
}

func (c *testClient) readFull(b []byte) {
	c.t.Helper()
	if _, err := io.ReadFull(c.br, b); err != nil {
		c.t.Fatalf("read: %v", err)
	}
}

func (c *testClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// expectClosed checks that the server closes the connection without sending
// anything more.
func (c *testClient) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := c.br.ReadByte()
	if err == nil {
		c.t.Fatalf("server sent %#x, want the connection closed", b)
	}
	if isTimeout(err) {
		c.t.Fatalf("connection still open: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// sendOpt sends an option.
func (c *testClient) sendOpt(opt uint32, data []byte) {
	c.t.Helper()
	b := make([]byte, 16+len(data))
	copy(b, "IHAVEOPT")
	binary.BigEndian.PutUint32(b[8:], opt)
	binary.BigEndian.PutUint32(b[12:], uint32(len(data)))
	copy(b[16:], data)
	c.write(b)
}

// optReply is one decoded option reply.
type optReply struct {
	opt, typ uint32
	data     []byte
}

// readOptReply reads one option reply and checks its magic and option.
func (c *testClient) readOptReply(opt uint32) optReply {
	c.t.Helper()
	var h [20]byte
	c.readFull(h[:])
	if m := binary.BigEndian.Uint64(h[0:8]); m != 0x3e889045565a9 {
		c.t.Fatalf("option reply magic %#x", m)
	}
	r := optReply{opt: binary.BigEndian.Uint32(h[8:12]), typ: binary.BigEndian.Uint32(h[12:16])}
	if r.opt != opt {
		c.t.Fatalf("reply for option %d, want %d", r.opt, opt)
	}
	r.data = make([]byte, binary.BigEndian.Uint32(h[16:20]))
	c.readFull(r.data)
	return r
}

// infoData encodes NBD_OPT_INFO/GO data.
func infoData(name string, infos ...uint16) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(infos)))
	for _, i := range infos {
		b = binary.BigEndian.AppendUint16(b, i)
	}
	return b
}

// exportInfo collects NBD_REP_INFO replies.
type exportInfo struct {
	size                    uint64
	flags                   uint16
	name, desc              *string
	minBS, prefBS, maxBS    uint32
	hasBlockSize, hasExport bool
}

// info sends INFO or GO and reads replies up to the final one, returning
// the info and the final reply type.
func (c *testClient) info(opt uint32, name string, infos ...uint16) (exportInfo, optReply) {
	c.t.Helper()
	c.sendOpt(opt, infoData(name, infos...))
	var ei exportInfo
	for {
		r := c.readOptReply(opt)
		if r.typ != repInfo {
			return ei, r
		}
		if len(r.data) < 2 {
			c.t.Fatalf("short NBD_REP_INFO")
		}
		switch typ := binary.BigEndian.Uint16(r.data); typ {
		case infoExport:
			if len(r.data) != 12 {
				c.t.Fatalf("NBD_INFO_EXPORT length %d", len(r.data))
			}
			ei.hasExport = true
			ei.size = binary.BigEndian.Uint64(r.data[2:])
			ei.flags = binary.BigEndian.Uint16(r.data[10:])
		case infoName:
			s := string(r.data[2:])
			ei.name = &s
		case infoDescription:
			s := string(r.data[2:])
			ei.desc = &s
		case infoBlockSize:
			if len(r.data) != 14 {
				c.t.Fatalf("NBD_INFO_BLOCK_SIZE length %d", len(r.data))
			}
			ei.hasBlockSize = true
			ei.minBS = binary.BigEndian.Uint32(r.data[2:])
			ei.prefBS = binary.BigEndian.Uint32(r.data[6:])
			ei.maxBS = binary.BigEndian.Uint32(r.data[10:])
		default:
			c.t.Fatalf("unexpected info type %d", typ)
		}
	}
}

// goExport sends GO and expects success.
func (c *testClient) goExport(name string) exportInfo {
	c.t.Helper()
	ei, r := c.info(optGo, name, infoBlockSize)
	if r.typ != repAck {
		c.t.Fatalf("GO %q: reply %#x %q", name, r.typ, r.data)
	}
	if !ei.hasExport {
		c.t.Fatalf("GO %q: no NBD_INFO_EXPORT", name)
	}
	return ei
}

// enableStructured negotiates structured replies.
func (c *testClient) enableStructured() {
	c.t.Helper()
	c.sendOpt(optStructuredReply, nil)
	if r := c.readOptReply(optStructuredReply); r.typ != repAck {
		c.t.Fatalf("STRUCTURED_REPLY: %#x", r.typ)
	}
	c.structured = true
}

// metaData encodes LIST/SET_META_CONTEXT data.
func metaData(name string, queries ...string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(queries)))
	for _, q := range queries {
		b = binary.BigEndian.AppendUint32(b, uint32(len(q)))
		b = append(b, q...)
	}
	return b
}

// metaContexts sends LIST or SET_META_CONTEXT and returns the contexts
// (name -> id) and the final reply.
func (c *testClient) metaContexts(opt uint32, name string, queries ...string) (map[string]uint32, optReply) {
	c.t.Helper()
	c.sendOpt(opt, metaData(name, queries...))
	ctxs := map[string]uint32{}
	for {
		r := c.readOptReply(opt)
		if r.typ != repMetaContext {
			return ctxs, r
		}
		ctxs[string(r.data[4:])] = binary.BigEndian.Uint32(r.data)
	}
}

// setMeta selects contexts and expects success.
func (c *testClient) setMeta(name string, queries ...string) map[string]uint32 {
	c.t.Helper()
	ctxs, r := c.metaContexts(optSetMetaContext, name, queries...)
	if r.typ != repAck {
		c.t.Fatalf("SET_META_CONTEXT: %#x %q", r.typ, r.data)
	}
	return ctxs
}

// send sends a request (and its payload).
func (c *testClient) send(r request, payload []byte) {
	c.t.Helper()
	c.mu.Lock()
	c.pending[r.cookie] = r
	c.mu.Unlock()
	b := make([]byte, requestSize+len(payload))
	putRequest(b, r)
	copy(b[requestSize:], payload)
	c.write(b)
}

// extent is one block status descriptor.
type extent struct{ length, flags uint32 }

// reply is a complete answer to one request.
type reply struct {
	cookie  uint64
	errno   uint32
	msg     string
	data    []byte              // READ data (reassembled)
	ctxID   uint32              // BLOCK_STATUS context
	extents []extent            // BLOCK_STATUS descriptors
	byCtx   map[uint32][]extent // BLOCK_STATUS descriptors by context, one chunk each
	chunks  int                 // structured chunks received
}

// readReply reads the next complete reply (simple, or structured chunks
// up to the one flagged done).
func (c *testClient) readReply() reply {
	c.t.Helper()
	var m [4]byte
	c.readFull(m[:])
	switch binary.BigEndian.Uint32(m[:]) {
	case 0x67446698:
		var h [12]byte
		c.readFull(h[:])
		rep := reply{errno: binary.BigEndian.Uint32(h[0:4]), cookie: binary.BigEndian.Uint64(h[4:12])}
		req := c.take(rep.cookie)
		if req.typ == cmdRead && rep.errno == 0 {
			if c.structured {
				c.t.Fatalf("simple reply to a read with structured replies on")
			}
			rep.data = make([]byte, req.length)
			c.readFull(rep.data)
		}
		return rep
	case 0x668e33ef:
		return c.readChunks()
	default:
		c.t.Fatalf("bad reply magic %x", m)
		return reply{}
	}
}

// take forgets and returns the pending request with cookie.
func (c *testClient) take(cookie uint64) request {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	req, ok := c.pending[cookie]
	if !ok {
		c.t.Fatalf("reply for unknown cookie %d", cookie)
	}
	delete(c.pending, cookie)
	return req
}

// readChunks reads structured chunks (magic already consumed for the
// first) until the done flag.
func (c *testClient) readChunks() reply {
	c.t.Helper()
	if !c.structured {
		c.t.Fatalf("structured chunk without negotiation")
	}
	var rep reply
	first := true
	for {
		if !first {
			var m [4]byte
			c.readFull(m[:])
			if binary.BigEndian.Uint32(m[:]) != 0x668e33ef {
				c.t.Fatalf("interleaved reply inside a structured reply")
			}
		}
		var h [16]byte
		c.readFull(h[:])
		flags := binary.BigEndian.Uint16(h[0:2])
		typ := binary.BigEndian.Uint16(h[2:4])
		cookie := binary.BigEndian.Uint64(h[4:12])
		payload := make([]byte, binary.BigEndian.Uint32(h[12:16]))
		c.readFull(payload)
		if !first && cookie != rep.cookie {
			c.t.Fatalf("chunks of two replies interleaved")
		}
		rep.cookie = cookie
		rep.chunks++
		first = false
		switch typ {
		case chunkNone:
			if len(payload) != 0 || flags&chunkFlagDone == 0 {
				c.t.Fatalf("bad NONE chunk")
			}
		case chunkOffsetData:
			if len(payload) < 9 {
				c.t.Fatalf("OFFSET_DATA chunk of %d bytes", len(payload))
			}
			rep.data = append(rep.data, payload[8:]...)
		case chunkBlockStatus:
			if len(payload) < 12 || (len(payload)-4)%8 != 0 {
				c.t.Fatalf("BLOCK_STATUS chunk of %d bytes", len(payload))
			}
			rep.ctxID = binary.BigEndian.Uint32(payload)
			if rep.byCtx == nil {
				rep.byCtx = map[uint32][]extent{}
			}
			if _, dup := rep.byCtx[rep.ctxID]; dup {
				c.t.Fatalf("two BLOCK_STATUS chunks for context %d", rep.ctxID)
			}
			rep.byCtx[rep.ctxID] = []extent{}
			for p := payload[4:]; len(p) > 0; p = p[8:] {
				e := extent{binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:])}
				rep.extents = append(rep.extents, e)
				rep.byCtx[rep.ctxID] = append(rep.byCtx[rep.ctxID], e)
			}
		case chunkError:
			rep.errno = binary.BigEndian.Uint32(payload)
			n := binary.BigEndian.Uint16(payload[4:])
			if int(n) > len(payload)-6 || rep.errno == 0 {
				c.t.Fatalf("bad error chunk")
			}
			rep.msg = string(payload[6 : 6+n])
		default:
			c.t.Fatalf("unexpected chunk type %#x", typ)
		}
		if flags&chunkFlagDone != 0 {
			c.take(rep.cookie)
			return rep
		}
	}
}

// do sends one request and reads its reply, which must be for it.
func (c *testClient) do(r request, payload []byte) reply {
	c.t.Helper()
	c.send(r, payload)
	rep := c.readReply()
	if rep.cookie != r.cookie {
		c.t.Fatalf("reply for cookie %d, want %d", rep.cookie, r.cookie)
	}
	return rep
}

var cookieMu sync.Mutex
var nextCookie uint64 = 1000

// newCookie returns a fresh cookie.
func newCookie() uint64 {
	cookieMu.Lock()
	defer cookieMu.Unlock()
	nextCookie++
	return nextCookie
}

// Request helpers returning the reply; they fail the test on errors only
// where noted.

func (c *testClient) read(off uint64, n uint32) reply {
	c.t.Helper()
	return c.do(request{typ: cmdRead, cookie: newCookie(), offset: off, length: n}, nil)
}

func (c *testClient) writeAt(off uint64, p []byte, flags uint16) reply {
	c.t.Helper()
	return c.do(request{typ: cmdWrite, flags: flags, cookie: newCookie(), offset: off, length: uint32(len(p))}, p)
}

func (c *testClient) cmd(typ, flags uint16, off uint64, n uint32) reply {
	c.t.Helper()
	return c.do(request{typ: typ, flags: flags, cookie: newCookie(), offset: off, length: n}, nil)
}

// mustOK fails unless rep succeeded.
func mustOK(t testing.TB, rep reply) reply {
	t.Helper()
	if rep.errno != 0 {
		t.Fatalf("request failed: %s %q", errnoName(rep.errno), rep.msg)
	}
	return rep
}

// mustErr fails unless rep failed with errno.
func mustErr(t testing.TB, rep reply, errno uint32) {
	t.Helper()
	if rep.errno != errno {
		t.Fatalf("got %s (%q), want %s", errnoName(rep.errno), rep.msg, errnoName(errno))
	}
}

// disconnect sends NBD_CMD_DISC.
func (c *testClient) disconnect() {
	c.t.Helper()
	b := make([]byte, requestSize)
	putRequest(b, request{typ: cmdDisc, cookie: newCookie()})
	c.write(b)
}
