package nbdserver

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/testpki"
)

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadX509DirErrors(t *testing.T) {
	p := newPKI(t)
	other := newPKI(t)
	expired, err := p.ca.Issue(testpki.LeafOptions{Subject: testpki.Loopback().Subject, Server: true,
		NotAfter: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	clientOnly := p.client
	for _, tc := range []struct {
		name  string
		setup func(dir string)
		want  string // the error, after "DIR/"
	}{
		{"no ca", func(dir string) { os.Remove(filepath.Join(dir, CACertFile)) }, "ca-cert.pem: no such file or directory"},
		{"no cert", func(dir string) { os.Remove(filepath.Join(dir, ServerCertFile)) }, "server-cert.pem: no such file or directory"},
		{"no key", func(dir string) { os.Remove(filepath.Join(dir, ServerKeyFile)) }, "server-key.pem: no such file or directory"},
		{"ca not PEM", func(dir string) { writeFile(t, filepath.Join(dir, CACertFile), "hello\n") }, "ca-cert.pem: no PEM certificate in it"},
		{"cert not PEM", func(dir string) { writeFile(t, filepath.Join(dir, ServerCertFile), "hello\n") }, "server-cert.pem: no PEM certificate in it"},
		{"key not PEM", func(dir string) { writeFile(t, filepath.Join(dir, ServerKeyFile), "hello\n") }, "server-key.pem: failed to find any PEM data in key input"},
		{"key of another", func(dir string) {
			copyFile(t, filepath.Join(other.dir, ServerKeyFile), filepath.Join(dir, ServerKeyFile))
		}, "server-key.pem: does not match server-cert.pem"},
		{"cert of another CA", func(dir string) {
			copyFile(t, filepath.Join(other.dir, ServerCertFile), filepath.Join(dir, ServerCertFile))
			copyFile(t, filepath.Join(other.dir, ServerKeyFile), filepath.Join(dir, ServerKeyFile))
		}, "server-cert.pem: not usable with ca-cert.pem: x509: certificate signed by unknown authority"},
		{"expired", func(dir string) {
			expired.Write(filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile))
		}, "server-cert.pem: not usable with ca-cert.pem: x509: certificate has expired"},
		{"client certificate", func(dir string) {
			clientOnly.Write(filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile))
		}, "server-cert.pem: not usable with ca-cert.pem: x509: certificate specifies an incompatible key usage"},
		{"crl of another CA", func(dir string) { other.ca.WriteCRL(filepath.Join(dir, CACRLFile)) }, "ca-crl.pem: not signed by a CA of ca-cert.pem"},
		{"crl not PEM", func(dir string) { writeFile(t, filepath.Join(dir, CACRLFile), "x\n") }, "ca-crl.pem: no PEM X509 CRL in it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "creds")
			os.Mkdir(dir, 0o700)
			for _, f := range []string{CACertFile, ServerCertFile, ServerKeyFile} {
				copyFile(t, filepath.Join(p.dir, f), filepath.Join(dir, f))
			}
			tc.setup(dir)
			_, err := LoadX509Dir(dir, true)
			if err == nil || !strings.HasPrefix(err.Error(), filepath.Join(dir, tc.want)) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want %q", err, filepath.Join(dir, tc.want))
			}
		})
	}
}

func TestX509DirVerifyPeerAndCRL(t *testing.T) {
	p := newPKI(t)
	other := newPKI(t)
	revoked, err := p.ca.Issue(testpki.Client("revoked"))
	if err != nil {
		t.Fatal(err)
	}
	p.ca.Revoke(revoked.Cert)
	if err := p.ca.WriteCRL(filepath.Join(p.dir, CACRLFile)); err != nil {
		t.Fatal(err)
	}
	d, err := LoadX509Dir(p.dir, true)
	if err != nil {
		t.Fatal(err)
	}
	open, err := LoadX509Dir(p.dir, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		dir    *X509Dir
		client *testpki.Leaf
		want   string // "" for success
	}{
		{"good client", d, p.client, ""},
		{"no certificate", d, nil, "certificate required"},
		{"other CA", d, other.client, "unknown certificate authority"},
		{"revoked", d, revoked, "bad certificate"},
		{"no verify, no certificate", open, nil, ""},
		{"no verify, revoked", open, revoked, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := handshakeWith(t, tc.dir.Config(), p.clientConfig(tc.client))
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("handshake: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestX509DirReload(t *testing.T) {
	p := newPKI(t)
	d, err := LoadX509Dir(p.dir, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg := d.Config()
	before, err := handshakeWith(t, cfg, p.clientConfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	// A bad directory leaves the credentials in use alone.
	os.Rename(filepath.Join(p.dir, ServerKeyFile), filepath.Join(p.dir, "key.away"))
	if err := d.Reload(); err == nil || !strings.Contains(err.Error(), "server-key.pem: no such file") {
		t.Fatalf("Reload of a bad directory: %v", err)
	}
	if got, err := handshakeWith(t, cfg, p.clientConfig(nil)); err != nil || !got.Equal(before) {
		t.Fatalf("after a failed reload: %v", err)
	}
	// A new certificate from the same CA is used by the next handshake.
	next, err := p.ca.Issue(testpki.Loopback())
	if err != nil {
		t.Fatal(err)
	}
	next.Write(filepath.Join(p.dir, ServerCertFile), filepath.Join(p.dir, ServerKeyFile))
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	got, err := handshakeWith(t, cfg, p.clientConfig(nil))
	if err != nil || !got.Equal(next.Cert) {
		t.Fatalf("after reload: %v, same certificate as before: %v", err, got != nil && got.Equal(before))
	}
	// A new CA: clients of the old one are refused from now on.
	other := newPKI(t)
	for _, f := range []string{CACertFile, ServerCertFile, ServerKeyFile} {
		copyFile(t, filepath.Join(other.dir, f), filepath.Join(p.dir, f))
	}
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := handshakeWith(t, cfg, p.clientConfig(nil)); err == nil {
		t.Fatal("a client of the old CA still connects")
	}
	if _, err := handshakeWith(t, cfg, other.clientConfig(nil)); err != nil {
		t.Fatal(err)
	}
}

// TestX509DirRSACapsTLS12: with client certificates verified against an
// RSA CA, TLS 1.2 at most (GnuTLS 3.7 clients send no PKCS #1 v1.5 signed
// client certificate to Go's TLS 1.3 CertificateRequest); else TLS 1.3.
func TestX509DirRSACapsTLS12(t *testing.T) {
	for _, tc := range []struct {
		rsa, verify bool
		want        uint16
	}{{false, true, tls.VersionTLS13}, {true, false, tls.VersionTLS13}, {true, true, tls.VersionTLS12}} {
		set, err := testpki.NewSet("CA", filepath.Join(t.TempDir(), "creds"), "client", tc.rsa)
		if err != nil {
			t.Fatal(err)
		}
		d, err := LoadX509Dir(set.ServerDir, tc.verify)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.MaxVersion(); got != tc.want {
			t.Errorf("rsa=%v verify=%v: MaxVersion %s, want %s", tc.rsa, tc.verify, tls.VersionName(got), tls.VersionName(tc.want))
		}
		p := &pki{ca: set.CA, dir: set.ServerDir, client: set.Client}
		a, b := net.Pipe()
		go func() {
			sc := tls.Server(b, serverTLSConfig(d.Config()))
			sc.Handshake()
			sc.Write([]byte{1})
		}()
		cc := tls.Client(a, p.clientConfig(set.Client))
		var one [1]byte
		if _, err := cc.Read(one[:]); err != nil {
			t.Fatalf("rsa=%v verify=%v: %v", tc.rsa, tc.verify, err)
		}
		if v := cc.ConnectionState().Version; v != tc.want {
			t.Errorf("rsa=%v verify=%v: negotiated %s", tc.rsa, tc.verify, tls.VersionName(v))
		}
		a.Close()
		b.Close()
	}
}
