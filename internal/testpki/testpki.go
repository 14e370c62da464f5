// Package testpki makes certificate authorities and certificates for tests,
// written as x509 credential directories in QEMU's layout (ca-cert.pem,
// server-cert.pem, server-key.pem; client-cert.pem, client-key.pem;
// ca-crl.pem), which hlfs serve, QEMU, qemu-nbd, nbdkit and libnbd read.
//
// Keys are ECDSA P-256 (quick to make), or RSA 2048 for a CA made by
// NewRSACA and what it issues: the keys certtool and openssl make by
// default, signed with PKCS #1 v1.5. Nothing here is fit for anything but
// tests. A CA is safe for concurrent use.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// CA is a certificate authority.
type CA struct {
	Cert *x509.Certificate
	key  crypto.Signer
	rsa  bool // RSA keys for the CA and what it issues

	mu      sync.Mutex
	serial  int64
	revoked []x509.RevocationListEntry
}

// NewCA makes a self-signed CA whose subject is "CN=<cn>,O=hlfs tests",
// with ECDSA keys.
func NewCA(cn string) (*CA, error) { return newCA(cn, false) }

// NewRSACA is NewCA with RSA keys for the CA and what it issues.
func NewRSACA(cn string) (*CA, error) { return newCA(cn, true) }

// newKey makes a private key.
func newKey(rsaKey bool) (crypto.Signer, error) {
	if rsaKey {
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func newCA(cn string, rsaKey bool) (*CA, error) {
	key, err := newKey(rsaKey)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"hlfs tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, key: key, rsa: rsaKey, serial: 1}, nil
}

// Leaf is a certificate with its key.
type Leaf struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// LeafOptions say what a certificate is for.
type LeafOptions struct {
	// Subject of the certificate; its String() is what DN lists match.
	Subject pkix.Name
	// Server makes a TLS server certificate (else a client one), valid for
	// IPs and DNSNames.
	Server   bool
	IPs      []net.IP
	DNSNames []string
	// NotAfter is the end of validity; zero means a year from now. A time
	// in the past makes an expired certificate.
	NotAfter time.Time
}

// Issue makes a certificate signed by the CA.
func (ca *CA) Issue(o LeafOptions) (*Leaf, error) {
	key, err := newKey(ca.rsa)
	if err != nil {
		return nil, err
	}
	ca.mu.Lock()
	ca.serial++
	serial := ca.serial
	ca.mu.Unlock()
	notAfter := o.NotAfter
	if notAfter.IsZero() {
		notAfter = time.Now().Add(365 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      o.Subject,
		NotBefore:    time.Now().Add(-2 * time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if o.Server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses, tmpl.DNSNames = o.IPs, o.DNSNames
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Leaf{Cert: cert, Key: key}, nil
}

// Revoke adds a certificate to the CA's revocation list (see WriteCRL).
func (ca *CA) Revoke(c *x509.Certificate) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.revoked = append(ca.revoked, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now()})
}

// WriteCRL writes the CA's revocation list as PEM to path.
func (ca *CA) WriteCRL(path string) error {
	ca.mu.Lock()
	tmpl := &x509.RevocationList{
		Number:                    big.NewInt(time.Now().UnixNano()),
		ThisUpdate:                time.Now().Add(-time.Hour),
		NextUpdate:                time.Now().Add(24 * time.Hour),
		RevokedCertificateEntries: append([]x509.RevocationListEntry(nil), ca.revoked...),
	}
	ca.mu.Unlock()
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644)
}

// WriteCACert writes the CA's certificate as PEM to path.
func (ca *CA) WriteCACert(path string) error {
	return os.WriteFile(path, certPEM(ca.Cert), 0o644)
}

// WriteServerDir writes dir/ca-cert.pem (this CA) and the server's
// certificate and key as server-cert.pem and server-key.pem: the
// directory `hlfs serve --tls-creds` and QEMU's endpoint=server read.
func (ca *CA) WriteServerDir(dir string, server *Leaf) error {
	return ca.writeDir(dir, "server", server)
}

// WriteClientDir writes dir/ca-cert.pem (this CA) and, when client is not
// nil, client-cert.pem and client-key.pem: the directory QEMU's
// endpoint=client, nbdinfo's tls-certificates and libnbd read.
func (ca *CA) WriteClientDir(dir string, client *Leaf) error {
	return ca.writeDir(dir, "client", client)
}

func (ca *CA) writeDir(dir, role string, leaf *Leaf) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := ca.WriteCACert(filepath.Join(dir, "ca-cert.pem")); err != nil {
		return err
	}
	if leaf == nil {
		return nil
	}
	return leaf.Write(filepath.Join(dir, role+"-cert.pem"), filepath.Join(dir, role+"-key.pem"))
}

// Write writes the certificate and its key (PKCS #8) as PEM files.
func (l *Leaf) Write(certPath, keyPath string) error {
	der, err := x509.MarshalPKCS8PrivateKey(l.Key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certPath, certPEM(l.Cert), 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Loopback is the server certificate options for 127.0.0.1 and localhost.
func Loopback() LeafOptions {
	return LeafOptions{
		Subject:  pkix.Name{CommonName: "localhost", Organization: []string{"hlfs tests"}},
		Server:   true,
		IPs:      []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames: []string{"localhost"},
	}
}

// Client is the client certificate options for a subject
// "CN=<cn>,O=hlfs tests".
func Client(cn string) LeafOptions {
	return LeafOptions{Subject: pkix.Name{CommonName: cn, Organization: []string{"hlfs tests"}}}
}

// Set is what most TLS tests start from: a CA, a server credential
// directory for 127.0.0.1 and localhost, and a client certificate.
type Set struct {
	CA        *CA
	ServerDir string // ca-cert.pem, server-cert.pem, server-key.pem
	Client    *Leaf  // "CN=<clientCN>,O=hlfs tests"
}

// NewSet makes a CA named caName (NewRSACA when rsaKeys), writes the
// server directory serverDir and issues a client certificate for clientCN.
func NewSet(caName, serverDir, clientCN string, rsaKeys bool) (*Set, error) {
	ca, err := newCA(caName, rsaKeys)
	if err != nil {
		return nil, err
	}
	srv, err := ca.Issue(Loopback())
	if err != nil {
		return nil, err
	}
	client, err := ca.Issue(Client(clientCN))
	if err != nil {
		return nil, err
	}
	if err := ca.WriteServerDir(serverDir, srv); err != nil {
		return nil, err
	}
	return &Set{CA: ca, ServerDir: serverDir, Client: client}, nil
}
