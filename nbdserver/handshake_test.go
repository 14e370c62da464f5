package nbdserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// twoExports returns a catalog with "a" (1 MiB, described, 64 KiB blocks)
// and "b" (64 KiB, read-only).
func twoExports() (*memCatalog, *memExport, *memExport) {
	cat := newCatalog()
	a := newMemExport(1 << 20)
	b := newMemExport(64 << 10)
	cat.add("a", a, ExportInfo{Description: "volume a", PreferredBlockSize: 64 << 10})
	cat.add("b", b, ExportInfo{ReadOnly: true})
	return cat, a, b
}

func TestGreetingFlags(t *testing.T) {
	cat, _, _ := twoExports()
	ts := startServer(t, cat, Options{})
	c := dial(t, ts)
	if got := c.greet(clientFlagFixedNewstyle); got != flagFixedNewstyle|flagNoZeroes {
		t.Fatalf("handshake flags %#x, want FIXED_NEWSTYLE|NO_ZEROES", got)
	}
}

func TestExportName(t *testing.T) {
	for _, noZeroes := range []bool{false, true} {
		cat, a, _ := twoExports()
		ts := startServer(t, cat, Options{})
		c := dial(t, ts)
		cflags := clientFlagFixedNewstyle
		if noZeroes {
			cflags |= clientFlagNoZeroes
		}
		c.greet(cflags)
		c.sendOpt(optExportName, []byte("a"))
		var b [10]byte
		c.readFull(b[:])
		if size := binary.BigEndian.Uint64(b[0:8]); size != 1<<20 {
			t.Fatalf("size %d", size)
		}
		want := transmissionFlags(ExportInfo{}, false)
		if flags := binary.BigEndian.Uint16(b[8:10]); flags != want {
			t.Fatalf("flags %#x, want %#x", flags, want)
		}
		if !noZeroes {
			zeroes := make([]byte, 124)
			c.readFull(zeroes)
			if !bytes.Equal(zeroes, make([]byte, 124)) {
				t.Fatalf("reserved bytes not zero")
			}
		}
		// The next bytes must be a reply to our first request: proves the
		// zero padding was (not) sent as negotiated.
		mustOK(t, c.writeAt(0, []byte("hello"), 0))
		if got := c.read(0, 5); string(got.data) != "hello" {
			t.Fatalf("read %q", got.data)
		}
		if string(a.bytes(0, 5)) != "hello" {
			t.Fatalf("export not written")
		}
	}
}

func TestExportNameUnknownCloses(t *testing.T) {
	cat, _, _ := twoExports()
	ts := startServer(t, cat, Options{})
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle)
	c.sendOpt(optExportName, []byte("nope"))
	c.expectClosed()
}

func TestGoReportsInfo(t *testing.T) {
	cat, _, _ := twoExports()
	ts := startServer(t, cat, Options{MaxPayload: 1 << 20})
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle | clientFlagNoZeroes)
	ei, r := c.info(optGo, "a", infoName, infoDescription, infoBlockSize)
	if r.typ != repAck {
		t.Fatalf("GO reply %#x", r.typ)
	}
	if ei.size != 1<<20 || ei.flags != transmissionFlags(ExportInfo{}, false) {
		t.Fatalf("size %d flags %#x", ei.size, ei.flags)
	}
	if ei.name == nil || *ei.name != "a" {
		t.Fatalf("name %v", ei.name)
	}
	if ei.desc == nil || *ei.desc != "volume a" {
		t.Fatalf("description %v", ei.desc)
	}
	if !ei.hasBlockSize || ei.minBS != 1 || ei.prefBS != 64<<10 || ei.maxBS != 1<<20 {
		t.Fatalf("block sizes %d/%d/%d", ei.minBS, ei.prefBS, ei.maxBS)
	}
	mustOK(t, c.read(0, 4096))
}

func TestGoWithoutRequestsSendsOnlyDefaults(t *testing.T) {
	cat, _, _ := twoExports()
	ts := startServer(t, cat, Options{})
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle)
	ei, r := c.info(optGo, "b")
	if r.typ != repAck {
		t.Fatalf("GO reply %#x", r.typ)
	}
	if ei.name != nil || ei.desc != nil {
		t.Fatalf("unrequested name/description sent")
	}
	if ei.prefBS != 4096 || ei.maxBS != DefaultMaxPayload {
		t.Fatalf("block sizes %d/%d/%d", ei.minBS, ei.prefBS, ei.maxBS)
	}
	if ei.flags&tflagReadOnly == 0 {
		t.Fatalf("read-only export without READ_ONLY flag: %#x", ei.flags)
	}
}

func TestInfoDoesNotBindThenGoOther(t *testing.T) {
	cat, a, b := twoExports()
	ts := startServer(t, cat, Options{})
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle)
	ei, r := c.info(optInfo, "b", infoBlockSize)
	if r.typ != repAck || ei.size != 64<<10 {
		t.Fatalf("INFO b: %#x size %d", r.typ, ei.size)
	}
	ei = c.goExport("a")
	if ei.size != 1<<20 {
		t.Fatalf("GO a: size %d", ei.size)
	}
	mustOK(t, c.writeAt(100, []byte("x"), 0))
	if a.bytes(100, 1)[0] != 'x' || b.allocated(100) {
		t.Fatalf("write went to the wrong export")
	}
}

func TestGoUnknownExportThenRetry(t *testing.T) {
	cat, _, _ := twoExports()
	cat.fail["broken"] = errors.New("disk on fire")
	ts := startServer(t, cat, Options{})
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle)
	for _, name := range []string{"nope", "broken"} {
		for _, opt := range []uint32{optInfo, optGo} {
			ei, r := c.info(opt, name)
			if r.typ != repErrUnknown || ei.hasExport {
				t.Fatalf("%d %q: reply %#x, info %v", opt, name, r.typ, ei.hasExport)
			}
			if len(r.data) == 0 {
				t.Fatalf("error without message")
			}
		}
	}
	c.goExport("a")
	mustOK(t, c.read(0, 1))
}

func TestList(t *testing.T) {
	cat, _, _ := twoExports()
	cat.add("", newMemExport(512), ExportInfo{})
	ts := startServer(t, cat, Options{})
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle)
	c.sendOpt(optList, nil)
	var names []string
	for {
		r := c.readOptReply(optList)
		if r.typ == repAck {
			break
		}
		if r.typ != repServer {
			t.Fatalf("reply %#x", r.typ)
		}
		n := binary.BigEndian.Uint32(r.data)
		if int(n) != len(r.data)-4 {
			t.Fatalf("name length %d in %d bytes", n, len(r.data))
		}
		names = append(names, string(r.data[4:]))
	}
	if !slices.Equal(names, []string{"a", "b", ""}) {
		t.Fatalf("names %q", names)
	}
	c.sendOpt(optList, []byte{0})
	if r := c.readOptReply(optList); r.typ != repErrInvalid {
		t.Fatalf("LIST with data: %#x", r.typ)
	}
	c.goExport("")
}

func TestAbort(t *testing.T) {
	cat, _, _ := twoExports()
	ts := startServer(t, cat, Options{})
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle)
	c.sendOpt(optAbort, []byte("ignored"))
	if r := c.readOptReply(optAbort); r.typ != repAck {
		t.Fatalf("ABORT reply %#x", r.typ)
	}
	c.expectClosed()
}

func TestUnsupportedOptionsKeepSync(t *testing.T) {
	cat, _, _ := twoExports()
	ts := startServer(t, cat, Options{})
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle)
	for _, opt := range []uint32{4, 11, 99, 0xffff} {
		c.sendOpt(opt, bytes.Repeat([]byte("IHAVEOPT"), 100))
		if r := c.readOptReply(opt); r.typ != repErrUnsup {
			t.Fatalf("option %d: %#x", opt, r.typ)
		}
	}
	c.sendOpt(optStartTLS, nil)
	if r := c.readOptReply(optStartTLS); r.typ != repErrUnsup && r.typ != repErrPolicy {
		t.Fatalf("STARTTLS: %#x", r.typ)
	}
	c.sendOpt(optStructuredReply, []byte{1})
	if r := c.readOptReply(optStructuredReply); r.typ != repErrInvalid {
		t.Fatalf("STRUCTURED_REPLY with data: %#x", r.typ)
	}
	c.sendOpt(optGo, []byte{0, 0, 0, 9, 'a', 0, 0})
	if r := c.readOptReply(optGo); r.typ != repErrInvalid {
		t.Fatalf("malformed GO: %#x", r.typ)
	}
	c.goExport("a")
	mustOK(t, c.read(0, 512))
}

func TestMetaContextNegotiation(t *testing.T) {
	cat, _, _ := twoExports()
	ts := startServer(t, cat, Options{})
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle)

	c.sendOpt(optSetMetaContext, metaData("a", metaBaseAlloc))
	if r := c.readOptReply(optSetMetaContext); r.typ != repErrInvalid {
		t.Fatalf("SET before STRUCTURED_REPLY: %#x", r.typ)
	}
	c.enableStructured()

	tests := []struct {
		opt     uint32
		queries []string
		want    []string
	}{
		{optListMetaContext, nil, []string{metaBaseAlloc}},
		{optListMetaContext, []string{"base:"}, []string{metaBaseAlloc}},
		{optListMetaContext, []string{"qemu:dirty-bitmap:x", "base:allocation"}, []string{metaBaseAlloc}},
		{optListMetaContext, []string{"qemu:dirty-bitmap:x", "base:other"}, nil},
		{optSetMetaContext, nil, nil},
		{optSetMetaContext, []string{"base:"}, nil},
		{optSetMetaContext, []string{"x-foo:bar", metaBaseAlloc, metaBaseAlloc}, []string{metaBaseAlloc}},
	}
	for _, tt := range tests {
		ctxs, r := c.metaContexts(tt.opt, "a", tt.queries...)
		if r.typ != repAck {
			t.Fatalf("%d %q: %#x", tt.opt, tt.queries, r.typ)
		}
		var got []string
		for name, id := range ctxs {
			got = append(got, name)
			if tt.opt == optSetMetaContext && id == 0 {
				t.Errorf("SET context id 0")
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Fatalf("%d %q: contexts %q, want %q", tt.opt, tt.queries, got, tt.want)
		}
	}
	if _, r := c.metaContexts(optListMetaContext, "nope"); r.typ != repErrUnknown {
		t.Fatalf("unknown export: %#x", r.typ)
	}
	c.sendOpt(optListMetaContext, []byte{0, 0, 0, 1, 'a', 0, 0, 0, 2, 0, 0, 0, 1})
	if r := c.readOptReply(optListMetaContext); r.typ != repErrInvalid {
		t.Fatalf("malformed query list: %#x", r.typ)
	}
	c.goExport("a")
	mustOK(t, c.cmd(cmdBlockStatus, 0, 0, 4096))
}

func TestMetaContextDoesNotCarryToOtherExport(t *testing.T) {
	cat, _, _ := twoExports()
	ts := startServer(t, cat, Options{})
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle)
	c.enableStructured()
	c.setMeta("b", metaBaseAlloc)
	c.goExport("a")
	mustErr(t, c.cmd(cmdBlockStatus, 0, 0, 4096), errnoINVAL)
}

func TestHandshakeViolationsClose(t *testing.T) {
	cat, _, _ := twoExports()
	ts := startServer(t, cat, Options{})
	tests := map[string]func(c *testClient){
		"unknown client flags": func(c *testClient) { c.greet(1 << 5) },
		"bad option magic": func(c *testClient) {
			c.greet(clientFlagFixedNewstyle)
			c.write([]byte("IHAVEOPX\x00\x00\x00\x07\x00\x00\x00\x00"))
		},
		"option too long": func(c *testClient) {
			c.greet(clientFlagFixedNewstyle)
			c.write([]byte("IHAVEOPT\x00\x00\x00\x07\x00\x10\x00\x01"))
		},
		"eof mid option": func(c *testClient) {
			c.greet(clientFlagFixedNewstyle)
			c.write([]byte("IHAVEOPT\x00\x00\x00\x07\x00\x00\x01\x00abc"))
			c.nc.(interface{ CloseWrite() error }).CloseWrite()
		},
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			c := dial(t, ts)
			c.t = t
			f(c)
			c.expectClosed()
		})
	}
	// The server still serves others.
	c := connect(t, ts, "a", false, false)
	mustOK(t, c.read(0, 1))
}

func TestTransmissionFlags(t *testing.T) {
	tests := []struct {
		info       ExportInfo
		structured bool
		want       uint16
	}{
		{ExportInfo{}, false, tflagHasFlags | tflagSendFlush | tflagSendFUA | tflagSendTrim |
			tflagSendWriteZeroes | tflagSendCache | tflagCanMultiConn},
		{ExportInfo{}, true, tflagHasFlags | tflagSendFlush | tflagSendFUA | tflagSendTrim |
			tflagSendWriteZeroes | tflagSendCache | tflagCanMultiConn | tflagSendDF},
		{ExportInfo{ReadOnly: true}, false, tflagHasFlags | tflagReadOnly | tflagSendFlush |
			tflagSendCache | tflagCanMultiConn},
	}
	for _, tt := range tests {
		if got := transmissionFlags(tt.info, tt.structured); got != tt.want {
			t.Errorf("%+v structured=%v: %#x, want %#x", tt.info, tt.structured, got, tt.want)
		}
	}
}

func TestBlockSizes(t *testing.T) {
	tests := []struct {
		pref       uint32
		maxPayload int
		wantPref   uint32
	}{
		{0, 32 << 20, 4096},
		{512, 32 << 20, 512},
		{2 << 20, 32 << 20, 2 << 20},
		{3000, 32 << 20, 4096},    // not a power of two
		{4 << 20, 32 << 20, 4096}, // too large
		{2 << 20, 64 << 10, 64 << 10},
	}
	for _, tt := range tests {
		minSize, pref, maxSize := blockSizes(ExportInfo{PreferredBlockSize: tt.pref}, tt.maxPayload)
		if minSize != 1 || pref != tt.wantPref || maxSize != uint32(tt.maxPayload) {
			t.Errorf("pref %d max %d: got %d/%d/%d", tt.pref, tt.maxPayload, minSize, pref, maxSize)
		}
	}
}

func TestParseInfoRequest(t *testing.T) {
	tests := []struct {
		data  []byte
		name  string
		infos []uint16
		ok    bool
	}{
		{infoData("vol", 3, 1), "vol", []uint16{3, 1}, true},
		{infoData(""), "", []uint16{}, true},
		{[]byte{0, 0, 0, 0, 0}, "", nil, false},                // short
		{[]byte{0, 0, 0, 3, 'a', 0, 0}, "", nil, false},        // name overruns
		{[]byte{0, 0, 0, 0, 0, 1}, "", nil, false},             // count overruns
		{append(infoData("a", 3), 0), "", nil, false},          // trailing byte
		{[]byte{0xff, 0xff, 0xff, 0xff, 0, 0}, "", nil, false}, // huge name
	}
	for i, tt := range tests {
		name, infos, ok := parseInfoRequest(tt.data)
		if ok != tt.ok || name != tt.name || !slices.Equal(infos, tt.infos) {
			t.Errorf("%d: got %q %v %v", i, name, infos, ok)
		}
	}
}

func TestParseMetaRequest(t *testing.T) {
	tests := []struct {
		data    []byte
		name    string
		queries []string
		ok      bool
	}{
		{metaData("a", "base:", "x:y"), "a", []string{"base:", "x:y"}, true},
		{metaData(""), "", []string{}, true},
		{[]byte{0, 0, 0, 0, 0, 0, 0}, "", nil, false},
		{[]byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, "", nil, false},
		{[]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 'a'}, "", nil, false},
		{append(metaData("a", "q"), 0), "", nil, false},
	}
	for i, tt := range tests {
		name, queries, ok := parseMetaRequest(tt.data)
		if ok != tt.ok || name != tt.name || !slices.Equal(queries, tt.queries) {
			t.Errorf("%d: got %q %q %v", i, name, queries, ok)
		}
	}
}
