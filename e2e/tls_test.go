package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"io"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/testpki"
)

// tlsPKI is what a TLS test needs: a CA, the server's credential directory
// and client credential directories (QEMU's layout, which libnbd reads
// too), all made by the test.
type tlsPKI struct {
	ca       *testpki.CA
	server   string // ca-cert.pem, server-cert.pem, server-key.pem
	client   string // ca-cert.pem, client-cert.pem (CN=hv1,O=hlfs tests), client-key.pem
	noCert   string // ca-cert.pem only
	intruder string // a client certificate of the same CA for CN=intruder
	otherCA  string // another CA and a client certificate it signed
	authz    string // a --tls-authz file allowing CN=hv1 only
}

// newTLSPKI makes the CAs, certificates and directories under a temporary
// directory; with rsaKeys the CA and what it issues have RSA keys (signed
// with PKCS #1 v1.5, as certtool and openssl make them by default).
func newTLSPKI(tb testing.TB, rsaKeys bool) *tlsPKI {
	tb.Helper()
	dir := tb.TempDir()
	p := &tlsPKI{
		server: filepath.Join(dir, "server"), client: filepath.Join(dir, "client"),
		noCert: filepath.Join(dir, "nocert"), intruder: filepath.Join(dir, "intruder"),
		otherCA: filepath.Join(dir, "otherca"), authz: filepath.Join(dir, "authz"),
	}
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	set, err := testpki.NewSet("hlfs e2e CA", p.server, "hv1", rsaKeys)
	must(err)
	p.ca = set.CA
	must(p.ca.WriteClientDir(p.client, set.Client))
	must(p.ca.WriteClientDir(p.noCert, nil))
	intruder, err := p.ca.Issue(testpki.Client("intruder"))
	must(err)
	must(p.ca.WriteClientDir(p.intruder, intruder))
	other, err := testpki.NewCA("another CA")
	must(err)
	stranger, err := other.Issue(testpki.Client("hv1"))
	must(err)
	must(other.WriteClientDir(p.otherCA, stranger))
	must(os.WriteFile(p.authz, []byte("# hypervisors allowed\nCN=hv1,O=hlfs tests\n"), 0o644))
	return p
}

// nbds returns the libnbd URI of vol over TLS with the credentials in dir.
func nbds(s *Server, vol, dir string) string {
	return "nbds://" + s.Addr + "/" + vol + "?tls-certificates=" + dir
}

// qemuTLS returns the QEMU arguments of an image vol over TLS with the
// client credentials in dir: an --object and --image-opts.
func qemuTLS(s *Server, vol, dir string) []string {
	host, port, _ := net.SplitHostPort(s.Addr)
	return []string{"--object", "tls-creds-x509,id=tls0,dir=" + dir + ",endpoint=client",
		"--image-opts", "driver=nbd,host=" + host + ",port=" + port + ",export=" + vol + ",tls-creds=tls0"}
}

// qemuIOTLS runs qemu-io commands on vol over TLS; it returns the output
// and whether qemu-io and every command succeeded.
func qemuIOTLS(s *Server, vol, dir string, cmds ...string) (string, bool) {
	args := qemuTLS(s, vol, dir)
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("qemu-io", args...).CombinedOutput()
	ok := err == nil && !bytes.Contains(out, []byte("Pattern verification failed")) && !bytes.Contains(out, []byte("failed:"))
	return string(out), ok
}

// startTLSServer serves vols with `hlfs serve --tls-creds` and args.
func startTLSServer(t *testing.T, p *tlsPKI, args []string, vols ...Volume) *Server {
	t.Helper()
	requireHLFS(t)
	s := newServer(t, vols...)
	s.ServeArgs = append([]string{"--admin-socket", "none", "--tls-creds", p.server}, args...)
	s.Start()
	return s
}

// refused runs a client command that must fail, and returns its output.
func refused(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err == nil {
		t.Fatalf("%s %s succeeded, want a refusal:\n%s", name, strings.Join(args, " "), out)
	}
	t.Logf("%s refused: %s", name, strings.TrimSpace(string(out)))
	return string(out)
}

// TestTLSClients serves a volume with TLS required, client certificates
// verified and an authz list, on TCP, and with TLS at the client's choice
// on a Unix socket. Real clients: nbdinfo, qemu-io, qemu-img, nbdcopy and
// python3-libnbd over TLS; then the refusals, each followed by a check
// that the server still serves; then SIGHUP with new credentials while a
// client stays connected.
func TestTLSClients(t *testing.T) {
	Begin(t, "qemu-io", "nbdcopy")
	py := Python(t)
	p := newTLSPKI(t, false)
	sock := filepath.Join(filepath.Dir(adminSocketPath(t)), "nbd.sock")
	const size = 256 << 20
	s := startTLSServer(t, p, []string{"--tls-verify-peer", "--tls-authz", p.authz, "--socket", sock, "--tls-unix", "on"},
		Volume{Name: "tlsvol", Size: size})
	uri := nbds(s, "tlsvol", p.client)
	served := func(after string) {
		t.Helper()
		out, err := exec.Command("nbdinfo", "--size", uri).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "268435456" {
			t.Fatalf("after %s the server no longer serves: %v\n%s", after, err, out)
		}
	}

	t.Run("nbdinfo", func(t *testing.T) {
		info := nbdinfo(t, uri)
		if len(info.Exports) != 1 || info.Exports[0].Size != size || !info.Structured {
			t.Fatalf("nbdinfo over TLS: %+v", info)
		}
		run(t, "nbdinfo", "--is", "tls", uri) // exit status 2 when not TLS
	})
	t.Run("qemu-io and qemu-img", func(t *testing.T) {
		out, ok := qemuIOTLS(s, "tlsvol", p.client,
			"write -P 0xa5 0 1M", "write -P 0x5a 4M 64k", "flush",
			"read -P 0xa5 0 1M", "read -P 0x5a 4M 64k", "read -P 0 1M 3M")
		if !ok {
			t.Fatalf("qemu-io over TLS:\n%s", out)
		}
		img := filepath.Join(t.TempDir(), "out.raw")
		run(t, "qemu-img", append(append([]string{"convert"}, qemuTLS(s, "tlsvol", p.client)...), "-O", "raw", img)...)
		want := make([]byte, 4<<20+64<<10)
		for i := range 1 << 20 {
			want[i] = 0xa5
		}
		for i := 4 << 20; i < len(want); i++ {
			want[i] = 0x5a
		}
		checkImage(t, img, want, size)
		if out := run(t, "qemu-img", append([]string{"info"}, qemuTLS(s, "tlsvol", p.client)...)...); !strings.Contains(out, "virtual size: 256 MiB") {
			t.Errorf("qemu-img info over TLS:\n%s", out)
		}
	})
	t.Run("python3-libnbd", func(t *testing.T) {
		out := run(t, py, "-c", `
import nbd, sys
h = nbd.NBD()
h.set_tls(nbd.TLS_REQUIRE)
h.set_tls_certificates(sys.argv[1])
h.connect_uri(sys.argv[2])
assert h.get_tls_negotiated(), "TLS not negotiated"
h.pwrite(b"libnbd over TLS" * 273, 8 << 20)
h.flush()
assert h.pread(15 * 273, 8 << 20) == b"libnbd over TLS" * 273
h.shutdown()
print("ok")
`, p.client, "nbds://"+s.Addr+"/tlsvol")
		if strings.TrimSpace(out) != "ok" {
			t.Fatalf("python: %s", out)
		}
	})
	t.Run("nbdcopy", func(t *testing.T) {
		src := make([]byte, 16<<20)
		rand.New(rand.NewSource(14)).Read(src)
		clear(src[4<<20 : 6<<20])
		dir := t.TempDir()
		in, out := filepath.Join(dir, "in.img"), filepath.Join(dir, "out.img")
		if err := os.WriteFile(in, src, 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, "nbdcopy", "--flush", in, uri)
		run(t, "nbdcopy", uri, out)
		checkImage(t, out, src, size)
	})

	// Refusals; the server goes on serving the others.
	t.Run("plain client under require", func(t *testing.T) {
		refused(t, "nbdinfo", s.URI("tlsvol"))
		host, port, _ := net.SplitHostPort(s.Addr)
		out := refused(t, "qemu-io", "--image-opts", "driver=nbd,host="+host+",port="+port+",export=tlsvol", "-c", "read 0 512")
		if !strings.Contains(out, "TLS is required") {
			t.Errorf("qemu-io does not show why:\n%s", out)
		}
		served("a plain client")
	})
	t.Run("client trusting another CA", func(t *testing.T) {
		refused(t, "nbdinfo", nbds(s, "tlsvol", p.otherCA))
		served("a client of another CA")
	})
	t.Run("client without certificate", func(t *testing.T) {
		refused(t, "nbdinfo", nbds(s, "tlsvol", p.noCert))
		served("a client without a certificate")
	})
	t.Run("DN not in the authz list", func(t *testing.T) {
		out, ok := qemuIOTLS(s, "tlsvol", p.intruder, "read 0 512")
		if ok || !strings.Contains(out, `client certificate "CN=intruder,O=hlfs tests" is not authorized on this server`) {
			t.Fatalf("qemu-io with a certificate not listed: ok=%v\n%s", ok, out)
		}
		t.Logf("qemu-io refused: %s", strings.TrimSpace(out))
		refused(t, "nbdinfo", nbds(s, "tlsvol", p.intruder))
		served("a client not listed")
	})
	t.Run("garbage after STARTTLS", func(t *testing.T) {
		c := dialRaw(t, "tcp", s.Addr)
		c.option(5, nil) // NBD_OPT_STARTTLS
		if typ, _ := c.reply(5); typ != 1 {
			t.Fatalf("STARTTLS: reply %#x, want ACK", typ)
		}
		c.nc.Write([]byte("this is no TLS ClientHello\r\n\r\n"))
		c.expectClosed()
		served("garbage after STARTTLS")
	})
	t.Run("options before STARTTLS", func(t *testing.T) {
		// Under require: refused before TLS, so nothing to rely on.
		c := dialRaw(t, "tcp", s.Addr)
		c.option(8, nil) // NBD_OPT_STRUCTURED_REPLY
		if typ, msg := c.reply(8); typ != 1<<31|5 {
			t.Fatalf("STRUCTURED_REPLY before TLS: %#x %q, want NBD_REP_ERR_TLS_REQD", typ, msg)
		}
		// On the Unix socket TLS is the client's choice: structured
		// replies and a meta context negotiated in clear must be gone
		// after STARTTLS (CVE-2021-3716).
		c = dialRaw(t, "unix", sock)
		c.option(8, nil)
		if typ, _ := c.reply(8); typ != 1 {
			t.Fatalf("STRUCTURED_REPLY in clear on the socket: %#x", typ)
		}
		c.option(10, metaQuery("tlsvol", "base:allocation")) // SET_META_CONTEXT
		if typ, _ := c.reply(10); typ != 4 {
			t.Fatalf("SET_META_CONTEXT: first reply %#x, want NBD_REP_META_CONTEXT", typ)
		}
		if typ, _ := c.reply(10); typ != 1 {
			t.Fatalf("SET_META_CONTEXT: %#x, want ACK", typ)
		}
		c.startTLS(t, p)
		flags := c.goExport(t, "tlsvol")
		if flags&(1<<7) != 0 { // NBD_FLAG_SEND_DF needs structured replies
			t.Errorf("transmission flags %#x: structured replies survived STARTTLS", flags)
		}
		// A read must get a simple reply, block status (no context) EINVAL.
		if magic, errno := c.request(t, 0, 512); magic != 0x67446698 || errno != 0 {
			t.Errorf("READ: reply magic %#x errno %d, want a simple reply", magic, errno)
		}
		if magic, errno := c.request(t, 7, 4096); magic != 0x67446698 || errno != 22 {
			t.Errorf("BLOCK_STATUS: reply magic %#x errno %d, want a simple EINVAL", magic, errno)
		}
		// In clear the socket serves plain clients.
		if out := run(t, "nbdinfo", "--size", "nbd+unix:///tlsvol?socket="+sock); strings.TrimSpace(out) != "268435456" {
			t.Errorf("nbdinfo over the socket in clear: %s", out)
		}
		served("options before STARTTLS")
	})

	t.Run("SIGHUP reloads the credentials", func(t *testing.T) {
		// A client that stays connected across the reload.
		cmd := exec.Command(py, "-c", `
import nbd, sys
h = nbd.NBD()
h.set_tls(nbd.TLS_REQUIRE)
h.set_tls_certificates(sys.argv[1])
h.connect_uri(sys.argv[2])
print("connected", flush=True)
sys.stdin.readline()
h.pwrite(b"after reload" * 100, 1 << 20)
h.flush()
assert h.pread(1200, 1 << 20) == b"after reload" * 100
h.shutdown()
print("still served", flush=True)
`, p.client, "nbds://"+s.Addr+"/tlsvol")
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		lines := bufio.NewScanner(stdout)
		if !lines.Scan() || lines.Text() != "connected" {
			t.Fatalf("python client: %q", lines.Text())
		}
		// New credentials from a new CA, same client name.
		next := newTLSPKI(t, false)
		for _, f := range []string{"ca-cert.pem", "server-cert.pem", "server-key.pem"} {
			b, err := os.ReadFile(filepath.Join(next.server, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(p.server, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Signaller()(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(s.logTail(), "SIGHUP: TLS credentials reloaded") {
			if time.Now().After(deadline) {
				t.Fatalf("no reload logged:\n%s", s.logTail())
			}
			time.Sleep(20 * time.Millisecond)
		}
		refused(t, "nbdinfo", uri) // the old CA is no longer the server's
		if out := run(t, "nbdinfo", "--size", nbds(s, "tlsvol", next.client)); strings.TrimSpace(out) != "268435456" {
			t.Fatalf("client of the new CA: %s", out)
		}
		io.WriteString(stdin, "go on\n")
		if !lines.Scan() || lines.Text() != "still served" {
			t.Fatalf("the client connected before the reload: %q", lines.Text())
		}
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	})
	s.Stop()
	s.Fsck("tlsvol")
}

// TestTLSGuestExt4 boots a Linux guest whose disk is served over TLS with
// client certificates verified: it makes and fills an ext4 file system,
// drops its caches, checks every file and the file system. The
// certificates have RSA keys, as QEMU's documented certtool recipe makes
// them (GnuTLS 3.7 clients send such a client certificate only in TLS
// 1.2, which the server then negotiates). The Unix socket of the same
// server is left in clear (--tls-unix off).
func TestTLSGuestExt4(t *testing.T) {
	Begin(t, "qemu-system-x86_64")
	p := newTLSPKI(t, true)
	sock := filepath.Join(filepath.Dir(adminSocketPath(t)), "nbd.sock")
	s := startTLSServer(t, p, []string{"--tls-verify-peer", "--socket", sock, "--tls-unix", "off"},
		Volume{Name: "guestvol", Size: 1 << 30})
	script := strings.Replace(guestWriteScript, "echo BOOT1-DONE\n", `echo BOOT1-DONE
echo 3 > /proc/sys/vm/drop_caches
blockdev --flushbufs /dev/vda
`, 1) + guestVerifyScript
	r := RunGuest(t, s.URI("guestvol"), script, GuestOptions{
		QemuArgs:     []string{"-object", "tls-creds-x509,id=tls0,dir=" + p.client + ",endpoint=client"},
		DriveOptions: "file.tls-creds=tls0",
	})
	if r.ExitCode != 0 || !strings.Contains(r.Console, "BOOT1-DONE") {
		t.Fatalf("guest over TLS: %v\n%s", r, tail(r.Console, 40))
	}
	written, verified, _ := strings.Cut(r.Console, "BOOT1-DONE")
	verifyGuestBoot(t, verified, consoleSums(t, written), nil)
	if !strings.Contains(s.logTail(), "guestvol") {
		t.Errorf("server log:\n%s", s.logTail())
	}

	// The socket is in clear: plain clients work, STARTTLS is refused.
	if out := run(t, "nbdinfo", "--size", "nbd+unix:///guestvol?socket="+sock); strings.TrimSpace(out) != "1073741824" {
		t.Errorf("nbdinfo over the socket: %s", out)
	}
	c := dialRaw(t, "unix", sock)
	c.option(5, nil)
	if typ, msg := c.reply(5); typ != 1<<31|2 || !strings.Contains(msg, "TLS is off on this socket") {
		t.Errorf("STARTTLS on the socket: %#x %q, want NBD_REP_ERR_POLICY", typ, msg)
	}
	// And TCP requires TLS; libnbd gets in with the RSA certificate too.
	refused(t, "nbdinfo", s.URI("guestvol"))
	if out := run(t, "nbdinfo", "--size", nbds(s, "guestvol", p.client)); strings.TrimSpace(out) != "1073741824" {
		t.Errorf("nbdinfo over TLS with an RSA client certificate: %s", out)
	}
	if !strings.Contains(s.logTail(), "TLS 1.2") {
		t.Errorf("the server does not say it caps TLS at 1.2:\n%s", s.logTail())
	}
	s.Stop()
	s.Fsck("guestvol")
}

// rawClient speaks just enough NBD for the tests the real clients cannot
// do: greeting and client flags, options, STARTTLS, GO and one request.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// dialRaw connects and exchanges the greeting and client flags (fixed
// newstyle, no zeroes).
func dialRaw(t *testing.T, network, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	c := &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
	g := c.read(18)
	if string(g[:16]) != "NBDMAGICIHAVEOPT" {
		t.Fatalf("greeting %q", g)
	}
	c.write([]byte{0, 0, 0, 3})
	return c
}

func (c *rawClient) read(n int) []byte {
	c.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c.br, b); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return b
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawClient) option(opt uint32, data []byte) {
	c.t.Helper()
	b := binary.BigEndian.AppendUint32([]byte("IHAVEOPT"), opt)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	c.write(append(b, data...))
}

// reply reads one option reply for opt: its type and data.
func (c *rawClient) reply(opt uint32) (uint32, string) {
	c.t.Helper()
	h := c.read(20)
	if binary.BigEndian.Uint64(h) != 0x3e889045565a9 || binary.BigEndian.Uint32(h[8:]) != opt {
		c.t.Fatalf("option reply header %x", h)
	}
	return binary.BigEndian.Uint32(h[12:]), string(c.read(int(binary.BigEndian.Uint32(h[16:]))))
}

// startTLS upgrades to TLS (the server's ACK is expected) with p's client
// certificate.
func (c *rawClient) startTLS(t *testing.T, p *tlsPKI) {
	t.Helper()
	c.option(5, nil)
	if typ, msg := c.reply(5); typ != 1 {
		t.Fatalf("STARTTLS: %#x %q", typ, msg)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(p.client, "client-cert.pem"), filepath.Join(p.client, "client-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.Cert)
	tc := tls.Client(c.nc, &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{pair}})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	c.nc, c.br = tc, bufio.NewReader(tc)
}

// goExport sends NBD_OPT_GO and returns the transmission flags.
func (c *rawClient) goExport(t *testing.T, name string) uint16 {
	t.Helper()
	data := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	data = binary.BigEndian.AppendUint16(append(data, name...), 0)
	c.option(7, data)
	var flags uint16
	for {
		typ, d := c.reply(7)
		switch {
		case typ == 1:
			return flags
		case typ == 3 && binary.BigEndian.Uint16([]byte(d)) == 0:
			flags = binary.BigEndian.Uint16([]byte(d[10:]))
		case typ&(1<<31) != 0:
			t.Fatalf("GO %s: %#x %q", name, typ, d)
		}
	}
}

// request sends a command without payload and returns the reply's magic
// and error (reading a simple reply's data for a successful read).
func (c *rawClient) request(t *testing.T, cmd uint16, length uint32) (magic, errno uint32) {
	t.Helper()
	b := binary.BigEndian.AppendUint32(nil, 0x25609513)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, cmd)
	b = binary.BigEndian.AppendUint64(b, 77)
	b = binary.BigEndian.AppendUint64(b, 0)
	c.write(binary.BigEndian.AppendUint32(b, length))
	h := c.read(4)
	magic = binary.BigEndian.Uint32(h)
	if magic != 0x67446698 {
		return magic, 0
	}
	h = c.read(12)
	errno = binary.BigEndian.Uint32(h)
	if cmd == 0 && errno == 0 {
		c.read(int(length))
	}
	return magic, errno
}

// expectClosed checks that the server closes the connection.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.br.ReadByte(); err == nil {
		c.t.Fatal("the server sent more, want the connection closed")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Fatal("the connection is still open")
	}
}

// metaQuery encodes NBD_OPT_SET_META_CONTEXT data for one export.
func metaQuery(name string, queries ...string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	b = binary.BigEndian.AppendUint32(append(b, name...), uint32(len(queries)))
	for _, q := range queries {
		b = binary.BigEndian.AppendUint32(b, uint32(len(q)))
		b = append(b, q...)
	}
	return b
}
