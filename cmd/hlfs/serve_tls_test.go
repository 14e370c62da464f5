package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hlfs/hlfs/internal/testpki"
)

// testCreds makes a CA, a server credential directory for 127.0.0.1 and
// a client certificate "CN=hv1,O=hlfs tests"; it returns the directory
// and the client's TLS configuration.
func testCreds(t *testing.T) (dir string, client *tls.Config) {
	t.Helper()
	set, err := testpki.NewSet("serve test CA", filepath.Join(t.TempDir(), "creds"), "hv1", false)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(set.CA.Cert)
	return set.ServerDir, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1",
		Certificates: []tls.Certificate{{Certificate: [][]byte{set.Client.Cert.Raw}, PrivateKey: set.Client.Key}}}
}

// startTLS upgrades the connection with NBD_OPT_STARTTLS.
func (c *nbdClient) startTLS(cfg *tls.Config) {
	c.t.Helper()
	c.option(nbdOptStartTLS, nil)
	if typ, msg := c.optReply(nbdOptStartTLS); typ != nbdRepAck {
		c.t.Fatalf("STARTTLS: %#x %q", typ, msg)
	}
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
}

const (
	nbdOptStartTLS   = 5
	nbdRepErrPolicy  = 1<<31 | 2
	nbdRepErrTLSReqd = 1<<31 | 5
)

func TestServeTLS(t *testing.T) {
	store, _ := testStore(t)
	mustHLFS(t, store, "create", "v", "--size", "1M")
	creds, client := testCreds(t)
	authz := filepath.Join(t.TempDir(), "authz")
	if err := os.WriteFile(authz, []byte("CN=hv1,O=hlfs tests\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "nbd.sock")
	addr, stderr, stop := startServe(t, store, "every volume", "--listen", "127.0.0.1:0", "--admin-socket", "none",
		"--socket", sock, "--tls-creds", creds, "--tls-verify-peer", "--tls-authz", authz, "--tls-unix", "off",
		"--max-connections", "3")
	log := stderr.String()
	for _, want := range []string{" with TLS required and unix:" + sock + " in clear",
		"TLS credentials " + creds + "; client certificates verified, 1 distinguished names allowed (" + authz + "); SIGHUP reloads them"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}

	c := dialNBD(t, "tcp", addr)
	c.option(nbdOptList, nil)
	if typ, msg := c.optReply(nbdOptList); typ != nbdRepErrTLSReqd || !strings.Contains(string(msg), "TLS is required") {
		t.Fatalf("LIST before TLS: %#x %q", typ, msg)
	}
	c.startTLS(client)
	if names := c.list(); strings.Join(names, ",") != "v" {
		t.Fatalf("LIST over TLS: %q", names)
	}
	if size, errType := c.goExport("v"); errType != 0 || size != 1<<20 {
		t.Fatalf("GO over TLS: %d %#x", size, errType)
	}
	if errno, _ := c.request(nbdCmdWrite, 0, 5, []byte("hello")); errno != 0 {
		t.Fatalf("WRITE: %d", errno)
	}

	// The socket is in clear: STARTTLS is refused there, plain GO works.
	u := dialNBD(t, "unix", sock)
	u.option(nbdOptStartTLS, nil)
	if typ, msg := u.optReply(nbdOptStartTLS); typ != nbdRepErrPolicy || !strings.Contains(string(msg), "TLS is off on this socket") {
		t.Fatalf("STARTTLS on the socket: %#x %q", typ, msg)
	}
	if _, errType := u.goExport("v"); errType != 0 {
		t.Fatalf("GO on the socket: %#x", errType)
	}
	if errno, got := u.request(nbdCmdRead, 0, 5, nil); errno != 0 || string(got) != "hello" {
		t.Fatalf("READ on the socket: %d %q", errno, got)
	}

	// Two served, one negotiating: the fourth is refused with a reason.
	third := dialNBD(t, "tcp", addr)
	fourth := dialNBD(t, "tcp", addr)
	fourth.option(nbdOptList, nil)
	if typ, msg := fourth.optReply(nbdOptList); typ != nbdRepErrPolicy || !strings.Contains(string(msg), "serves at most 3") {
		t.Fatalf("fourth connection: %#x %q", typ, msg)
	}
	third.conn.Close()
	c.request(nbdCmdDisc, 0, 0, nil)
	u.request(nbdCmdDisc, 0, 0, nil)
	if code := stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
}

func TestServeTLSErrors(t *testing.T) {
	store, _ := testStore(t)
	mustHLFS(t, store, "create", "v", "--size", "1M")
	creds, _ := testCreds(t)
	serve := func(args ...string) result {
		return hlfs(t, store, append([]string{"serve", "--listen", "127.0.0.1:0", "--admin-socket", "none"}, args...)...)
	}
	wantError(t, serve("--tls", "on", "v"), 2, "--tls needs --tls-creds DIR")
	wantError(t, serve("--tls-verify-peer", "v"), 2, "--tls-verify-peer needs --tls-creds DIR")
	wantError(t, serve("--tls-unix", "off", "v"), 2, "--tls-unix needs --tls-creds DIR")
	wantError(t, serve("--tls-creds", creds, "--tls", "off", "v"), 2, `--tls "off": want on or require`)
	wantError(t, serve("--tls-creds", creds, "--tls-unix", "maybe", "v"), 2, `--tls-unix "maybe": want off, on or require`)
	wantError(t, serve("--tls-creds", creds, "--tls-authz", "x", "v"), 2, "--tls-authz needs --tls-verify-peer")
	wantError(t, serve("--max-connections", "0", "v"), 2, "--max-connections and --max-handshakes-per-address take a number of at least 1")

	missing := filepath.Join(t.TempDir(), "nowhere")
	wantError(t, serve("--tls-creds", missing, "v"), 1, "TLS credentials: "+filepath.Join(missing, "ca-cert.pem")+": no such file or directory")
	os.Remove(filepath.Join(creds, "server-key.pem"))
	wantError(t, serve("--tls-creds", creds, "v"), 1, "TLS credentials: "+filepath.Join(creds, "server-key.pem")+": no such file or directory")
	creds, _ = testCreds(t)
	authz := filepath.Join(t.TempDir(), "authz")
	os.WriteFile(authz, []byte("CN=hv1\nNOPE=x\n"), 0o644)
	wantError(t, serve("--tls-creds", creds, "--tls-verify-peer", "--tls-authz", authz, "v"), 1,
		"--tls-authz: "+authz+`:2: unknown attribute type "NOPE"`)
}

func TestServeHelpMentionsTLSAndLimits(t *testing.T) {
	r := hlfs(t, "file:///nonexistent", "serve", "--help")
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	var flags []string
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 && strings.HasPrefix(f[0], "--") {
			flags = append(flags, f[0])
		}
	}
	for _, want := range []string{"--tls-creds", "--tls", "--tls-verify-peer", "--tls-authz", "--tls-unix",
		"--max-connections", "--max-handshakes-per-address"} {
		if !strings.Contains(strings.Join(flags, " ")+" ", want+" ") {
			t.Errorf("serve --help lacks %s (flags %v)", want, flags)
		}
	}
	if !strings.Contains(r.stdout, "no PSK") {
		t.Errorf("serve --help does not say PSK is not supported:\n%s", r.stdout)
	}
}
