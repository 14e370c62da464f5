package nbdserver

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/testpki"
)

// pki is a CA with a server credential directory and client certificates
// made for one test.
type pki struct {
	ca     *testpki.CA
	dir    string // the server's credential directory
	client *testpki.Leaf
}

// newPKI makes a CA, a server certificate for 127.0.0.1 in a credential
// directory and a client certificate "CN=client,O=hlfs tests".
func newPKI(t testing.TB) *pki {
	t.Helper()
	set, err := testpki.NewSet("hlfs test CA", filepath.Join(t.TempDir(), "creds"), "client", false)
	if err != nil {
		t.Fatal(err)
	}
	return &pki{ca: set.CA, dir: set.ServerDir, client: set.Client}
}

// tlsOptions loads the server side of p.
func (p *pki) tlsOptions(t testing.TB, mode TLSMode, verifyPeer bool) *TLSOptions {
	t.Helper()
	d, err := LoadX509Dir(p.dir, verifyPeer)
	if err != nil {
		t.Fatal(err)
	}
	return &TLSOptions{Config: d.Config(), Mode: mode}
}

// clientConfig trusts p's CA and presents cert (none when nil).
func (p *pki) clientConfig(cert *testpki.Leaf) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.Cert)
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.Cert.Raw}, PrivateKey: cert.Key, Leaf: cert.Cert}}
	}
	return cfg
}

// startTLS sends NBD_OPT_STARTTLS, expects the ACK and runs the client
// side of the TLS handshake, returning its error.
func (c *testClient) startTLS(cfg *tls.Config) error {
	c.t.Helper()
	c.sendOpt(optStartTLS, nil)
	if r := c.readOptReply(optStartTLS); r.typ != repAck {
		c.t.Fatalf("STARTTLS: reply %#x %q", r.typ, r.data)
	}
	if c.br.Buffered() != 0 {
		c.t.Fatalf("server sent more after the STARTTLS ACK")
	}
	tc := tls.Client(c.nc, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.nc, c.br = tc, bufio.NewReader(tc)
	return nil
}

// mustStartTLS is startTLS that must succeed.
func (c *testClient) mustStartTLS(cfg *tls.Config) {
	c.t.Helper()
	if err := c.startTLS(cfg); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
}

// expectOptError sends opt and expects the error reply typ with a message
// containing msg.
func (c *testClient) expectOptError(opt uint32, data []byte, typ uint32, msg string) {
	c.t.Helper()
	c.sendOpt(opt, data)
	r := c.readOptReply(opt)
	if r.typ != typ || !strings.Contains(string(r.data), msg) {
		c.t.Fatalf("option %d: reply %#x %q, want %#x with %q", opt, r.typ, r.data, typ, msg)
	}
}

func TestStartTLSRequire(t *testing.T) {
	p := newPKI(t)
	cat, a, _ := twoExports()
	ts := startServer(t, cat, Options{TLS: p.tlsOptions(t, TLSRequire, false)})
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle | clientFlagNoZeroes)
	// Every option but STARTTLS and ABORT, known or not, needs TLS first.
	for _, o := range []struct {
		opt  uint32
		data []byte
	}{
		{optList, nil}, {optInfo, infoData("a")}, {optGo, infoData("a")},
		{optStructuredReply, nil}, {optListMetaContext, metaData("a")},
		{optSetMetaContext, metaData("a", metaBaseAlloc)}, {42, []byte("x")},
	} {
		c.expectOptError(o.opt, o.data, repErrTLSReqd, "TLS is required")
	}
	c.expectOptError(optStartTLS, []byte("x"), repErrInvalid, "takes no data")
	c.mustStartTLS(p.clientConfig(nil))
	c.expectOptError(optStartTLS, nil, repErrInvalid, "already negotiated")
	c.enableStructured()
	c.goExport("a")
	mustOK(t, c.writeAt(0, []byte("over TLS"), cmdFlagFUA))
	if rep := mustOK(t, c.read(0, 8)); string(rep.data) != "over TLS" {
		t.Fatalf("read %q", rep.data)
	}
	if string(a.bytes(0, 8)) != "over TLS" {
		t.Fatalf("export holds %q", a.bytes(0, 8))
	}
	c.disconnect()
	c.expectClosed()

	// NBD_OPT_EXPORT_NAME cannot carry TLS_REQD: the connection is closed.
	c2 := dial(t, ts)
	c2.greet(clientFlagFixedNewstyle)
	c2.sendOpt(optExportName, []byte("a"))
	c2.expectClosed()

	// ABORT works in clear.
	c3 := dial(t, ts)
	c3.greet(clientFlagFixedNewstyle)
	c3.sendOpt(optAbort, nil)
	if r := c3.readOptReply(optAbort); r.typ != repAck {
		t.Fatalf("ABORT: %#x", r.typ)
	}
	c3.expectClosed()
}

// TestStartTLSDropsEarlierOptions is CVE-2021-3716: structured replies and
// meta contexts negotiated in clear (by a man in the middle, say) must not
// survive STARTTLS.
func TestStartTLSDropsEarlierOptions(t *testing.T) {
	p := newPKI(t)
	cat, _, _ := twoExports()
	ts := startServer(t, cat, Options{TLS: p.tlsOptions(t, TLSOn, false)})
	for _, upgrade := range []bool{false, true} {
		c := dial(t, ts)
		c.greet(clientFlagFixedNewstyle | clientFlagNoZeroes)
		c.enableStructured()
		if ids := c.setMeta("a", metaBaseAlloc); len(ids) != 1 {
			t.Fatalf("SET_META_CONTEXT selected %v", ids)
		}
		if upgrade {
			c.mustStartTLS(p.clientConfig(nil))
			c.structured = false // what a careful client believes now
		}
		ei := c.goExport("a")
		if upgrade != (ei.flags&tflagSendDF == 0) {
			t.Fatalf("upgrade=%v: transmission flags %#x (DF means structured replies are on)", upgrade, ei.flags)
		}
		// readReply fails the test on a structured reply the client did
		// not negotiate, and on a simple reply to a read when it did.
		mustOK(t, c.read(0, 512))
		rep := c.cmd(cmdBlockStatus, 0, 0, 4096)
		if upgrade {
			mustErr(t, rep, errnoINVAL) // no context was negotiated over TLS
		} else if len(rep.extents) == 0 {
			t.Fatalf("BLOCK_STATUS in clear: %+v", rep)
		}
		c.disconnect()
		c.expectClosed()
	}
}

func TestStartTLSOnServesClear(t *testing.T) {
	p := newPKI(t)
	cat, _, _ := twoExports()
	ts := startServer(t, cat, Options{TLS: p.tlsOptions(t, TLSOn, false)})
	c := connect(t, ts, "a", true, true)
	mustOK(t, c.read(0, 4096))
}

func TestStartTLSOffListenerAndUnconfigured(t *testing.T) {
	p := newPKI(t)
	cat, _, _ := twoExports()
	srv := New(cat, Options{TLS: p.tlsOptions(t, TLSRequire, false)})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeMode(l, TLSOff)
	t.Cleanup(func() { srv.Shutdown(t.Context()) })
	c := dial(t, &testServer{Server: srv, addr: l.Addr().String()})
	c.greet(clientFlagFixedNewstyle)
	c.expectOptError(optStartTLS, nil, repErrPolicy, "TLS is off on this socket")
	c.goExport("a")
	mustOK(t, c.read(0, 512))

	plainCat, _, _ := twoExports() // its own: stop checks it holds nothing
	plain := startServer(t, plainCat, Options{})
	c = dial(t, plain)
	c.greet(clientFlagFixedNewstyle)
	c.expectOptError(optStartTLS, nil, repErrUnsup, "not configured")
	if err := plain.ServeMode(l, TLSOn); err == nil || !strings.Contains(err.Error(), "without Options.TLS") {
		t.Fatalf("ServeMode TLSOn without TLS: %v", err)
	}
}

// TestStartTLSRefusals: each bad client is dropped while a good one, set
// up first, goes on being served.
func TestStartTLSRefusals(t *testing.T) {
	p := newPKI(t)
	other := newPKI(t) // another CA
	strange, err := other.ca.Issue(testpki.Client("stranger"))
	if err != nil {
		t.Fatal(err)
	}
	cat, _, _ := twoExports()
	opts := p.tlsOptions(t, TLSRequire, true)
	var authorized []string
	opts.Authorize = func(cs *tls.ConnectionState) error {
		dn := cs.PeerCertificates[0].Subject.String()
		authorized = append(authorized, dn)
		if strings.Contains(dn, "CN=denied") {
			return errors.New("not on the list")
		}
		return nil
	}
	ts := startServer(t, cat, Options{TLS: opts})
	good := dial(t, ts)
	good.greet(clientFlagFixedNewstyle | clientFlagNoZeroes)
	good.mustStartTLS(p.clientConfig(p.client))
	good.goExport("a")
	stillServed := func(step string) {
		t.Helper()
		if rep := good.writeAt(0, []byte(step), 0); rep.errno != 0 {
			t.Fatalf("after %s: %v", step, rep.errno)
		}
	}

	t.Run("no client certificate", func(t *testing.T) {
		c := dial(t, ts)
		c.greet(clientFlagFixedNewstyle)
		if err := c.startTLS(p.clientConfig(nil)); err == nil {
			// TLS 1.3 clients learn of the refusal on their first read.
			c.sendOpt(optList, nil)
			c.expectClosed()
		}
		stillServed("no cert")
	})
	t.Run("client trusting another CA", func(t *testing.T) {
		c := dial(t, ts)
		c.greet(clientFlagFixedNewstyle)
		if err := c.startTLS(other.clientConfig(p.client)); err == nil {
			t.Fatal("the client accepted a server its CA did not sign")
		}
		stillServed("other CA")
	})
	t.Run("client certificate of another CA", func(t *testing.T) {
		c := dial(t, ts)
		c.greet(clientFlagFixedNewstyle)
		if err := c.startTLS(p.clientConfig(strange)); err == nil {
			c.sendOpt(optList, nil)
			c.expectClosed()
		}
		stillServed("stranger")
	})
	t.Run("garbage after STARTTLS", func(t *testing.T) {
		c := dial(t, ts)
		c.greet(clientFlagFixedNewstyle)
		c.sendOpt(optStartTLS, nil)
		if r := c.readOptReply(optStartTLS); r.typ != repAck {
			t.Fatalf("STARTTLS: %#x", r.typ)
		}
		c.write([]byte("IHAVEOPT this is no TLS client hello\r\n\r\n"))
		c.expectClosed()
		stillServed("garbage")
	})
	t.Run("not authorized", func(t *testing.T) {
		denied, err := p.ca.Issue(testpki.Client("denied"))
		if err != nil {
			t.Fatal(err)
		}
		c := dial(t, ts)
		c.greet(clientFlagFixedNewstyle)
		c.mustStartTLS(p.clientConfig(denied))
		c.expectOptError(optList, nil, repErrPolicy, "not on the list")
		c.expectOptError(optGo, infoData("a"), repErrPolicy, "not on the list")
		c.sendOpt(optExportName, []byte("a"))
		c.expectClosed()
		stillServed("denied")
	})
	if len(authorized) != 2 || !strings.Contains(authorized[0], "CN=client") {
		t.Fatalf("Authorize saw %q, want the good client then the denied one", authorized)
	}
}

func TestStartTLSEarlyDataCloses(t *testing.T) {
	p := newPKI(t)
	cat, _, _ := twoExports()
	srv := New(cat, Options{TLS: p.tlsOptions(t, TLSRequire, false)})
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		srv.serveConn(server, TLSRequire)
		close(done)
	}()
	c := newTestClient(t, client)
	c.greet(clientFlagFixedNewstyle)
	// STARTTLS and, in the same write, what should wait for its reply.
	b := (&stream{}).opt(optStartTLS, nil).b
	c.write(append(b, 0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5))
	c.expectClosed()
	<-done
}

func TestDNList(t *testing.T) {
	p := newPKI(t)
	path := filepath.Join(t.TempDir(), "authz")
	writeFile(t, path, `# clients allowed
CN=client,O=hlfs tests
O = other, CN = x\2C y
subject=O = hlfs tests, CN = listed
`)
	l, err := LoadDNList(path)
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 3 {
		t.Fatalf("%d DNs", l.Len())
	}
	for _, tc := range []struct {
		cn   string
		want bool
	}{{"client", true}, {"listed", true}, {"Client", false}, {"x, y", false}, {"denied", false}} {
		c, err := p.ca.Issue(testpki.Client(tc.cn))
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Allows(c.Cert); got != tc.want {
			t.Errorf("CN=%s: allowed %v, want %v", tc.cn, got, tc.want)
		}
		err = l.Authorize(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.Cert}})
		if (err == nil) != tc.want || (err != nil && !strings.Contains(err.Error(), ",O=hlfs tests\" is not authorized")) {
			t.Errorf("CN=%s: Authorize: %v", tc.cn, err)
		}
	}
	if err := l.Authorize(&tls.ConnectionState{}); err == nil {
		t.Error("Authorize without a certificate succeeded")
	}

	for content, want := range map[string]string{
		"":                     "no distinguished name",
		"# only a comment\n":   "no distinguished name",
		"CN=a\nXX=b\n":         `:2: unknown attribute type "XX"`,
		"CN=a,\n":              ":1: a separator at the end",
		"CN\n":                 ":1: \"CN\": want TYPE=value",
		"CN=\n":                ":1: empty value for CN",
		"2.5.4.3=a,O=b\\":      ":1: '\\' at the end",
		"1.2.3.4.5=x,1.2=y\n":  "",
		"emailAddress=a@b.c\n": "",
	} {
		writeFile(t, path, content)
		_, err := LoadDNList(path)
		if want == "" {
			if err != nil {
				t.Errorf("%q: %v", content, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), path) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", content, err, want)
		}
	}
	if _, err := LoadDNList(filepath.Join(t.TempDir(), "nope")); err == nil || !strings.HasSuffix(err.Error(), "nope: no such file or directory") {
		t.Errorf("missing file: %v", err)
	}
}

// handshakeWith runs a TLS handshake against a server using cfg.
func handshakeWith(t *testing.T, server *tls.Config, client *tls.Config) (*x509.Certificate, error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	a.SetDeadline(time.Now().Add(10 * time.Second))
	b.SetDeadline(time.Now().Add(10 * time.Second))
	errc := make(chan error, 1)
	go func() {
		sc := tls.Server(b, serverTLSConfig(server))
		err := sc.Handshake()
		if err == nil {
			// With TLS 1.3 the client's certificate is checked after the
			// client's handshake returned; make it learn the outcome.
			_, err = sc.Write([]byte{1})
		}
		errc <- err
	}()
	cc := tls.Client(a, client)
	err = cc.Handshake()
	if err == nil {
		var one [1]byte
		_, err = cc.Read(one[:])
	}
	serr := <-errc
	if err == nil {
		err = serr
	}
	if err != nil {
		return nil, err
	}
	return cc.ConnectionState().PeerCertificates[0], nil
}
