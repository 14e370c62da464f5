package nbdserver

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
)

// File names of an x509 credential directory, as QEMU's tls-creds-x509
// object with endpoint=server reads them (qemu docs/system/tls.rst), so
// one directory serves QEMU, qemu-nbd and hlfs alike.
const (
	CACertFile     = "ca-cert.pem"     // CA certificates, PEM; required
	CACRLFile      = "ca-crl.pem"      // certificate revocation list, PEM; optional
	ServerCertFile = "server-cert.pem" // the server's certificate (and chain), PEM; required
	ServerKeyFile  = "server-key.pem"  // its private key, PEM; required
)

// X509Dir is the server side of an x509 credential directory laid out as
// QEMU's (CACertFile, ServerCertFile, ServerKeyFile, optional CACRLFile).
// Config returns the tls.Config to put in TLSOptions; Reload reads the
// directory again and later TLS handshakes use what it read, while
// sessions already set up go on. Safe for concurrent use.
//
// What is checked when loading: every file parses, the key matches the
// certificate, the certificate chains to a CA of CACertFile, is valid now
// and usable for a TLS server, and a CRL is signed by one of the CAs.
// With verifyPeer, clients must present a certificate that chains to a
// CA of CACertFile, is valid for a TLS client and is not revoked by the
// CRL; without it, client certificates are not asked for. With verifyPeer
// and an RSA CA the server negotiates at most TLS 1.2 (see MaxVersion).
type X509Dir struct {
	dir        string
	verifyPeer bool
	cur        atomic.Pointer[tls.Config] // what handshakes use now
}

// LoadX509Dir reads the credential directory dir. Its errors are one line
// naming the file at fault.
func LoadX509Dir(dir string, verifyPeer bool) (*X509Dir, error) {
	d := &X509Dir{dir: dir, verifyPeer: verifyPeer}
	if err := d.Reload(); err != nil {
		return nil, err
	}
	return d, nil
}

// Dir returns the directory the credentials are read from.
func (d *X509Dir) Dir() string { return d.dir }

// Reload reads the directory again. On error the credentials in use stay.
func (d *X509Dir) Reload() error {
	cfg, err := loadX509Dir(d.dir, d.verifyPeer)
	if err != nil {
		return err
	}
	d.cur.Store(cfg)
	return nil
}

// MaxVersion returns the highest TLS version the credentials last loaded
// allow: TLS 1.2 when client certificates are verified against an RSA CA
// (see loadX509Dir), else TLS 1.3.
func (d *X509Dir) MaxVersion() uint16 {
	if v := d.cur.Load().MaxVersion; v != 0 {
		return v
	}
	return tls.VersionTLS13
}

// Config returns a tls.Config whose handshakes use the credentials last
// loaded.
func (d *X509Dir) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return d.cur.Load(), nil
		},
	}
}

// loadX509Dir builds the tls.Config for the credentials in dir.
func loadX509Dir(dir string, verifyPeer bool) (*tls.Config, error) {
	path := func(name string) string { return filepath.Join(dir, name) }
	cas, err := readCertificates(path(CACertFile))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	certPEM, err := readFile(path(ServerCertFile))
	if err != nil {
		return nil, err
	}
	keyPEM, err := readFile(path(ServerKeyFile))
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if _, cerr := readCertificates(path(ServerCertFile)); cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("%s: %s", path(ServerKeyFile), keyPairMessage(err))
	}
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return nil, fmt.Errorf("%s: not usable with %s: %w", path(ServerCertFile), CACertFile, err)
	}
	revoked, err := readCRL(path(CACRLFile), cas)
	if err != nil {
		return nil, err
	}

	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.NoClientCert,
		// NBD moves blocks: full-size records from the first byte.
		DynamicRecordSizingDisabled: true,
	}
	if verifyPeer {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = pool
		if slices.ContainsFunc(cas, func(c *x509.Certificate) bool { return c.PublicKeyAlgorithm == x509.RSA }) {
			// An RSA CA signs client certificates with PKCS #1 v1.5. In
			// TLS 1.3 Go's CertificateRequest names those signatures only
			// in signature_algorithms_cert, which GnuTLS 3.7 (QEMU,
			// libnbd on Debian 12) does not read: such clients then send
			// no certificate. TLS 1.2 lists them where every client looks.
			cfg.MaxVersion = tls.VersionTLS12
		}
		if len(revoked) > 0 {
			cfg.VerifyConnection = func(cs tls.ConnectionState) error {
				for _, chain := range cs.VerifiedChains {
					for _, c := range chain {
						if revoked[revocationKey(c.RawIssuer, c.SerialNumber.String())] {
							return fmt.Errorf("client certificate %q is revoked by %s", c.Subject.String(), CACRLFile)
						}
					}
				}
				return nil
			}
		}
	}
	return cfg, nil
}

// keyPairMessage words an error of tls.X509KeyPair about the key file.
func keyPairMessage(err error) string {
	msg := err.Error()
	if msg == "tls: private key does not match public key" {
		return "does not match " + ServerCertFile
	}
	return strings.TrimPrefix(msg, "tls: ")
}

// readFile reads a credential file; a missing or unreadable file is
// "PATH: no such file or directory" and the like.
func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return nil, fmt.Errorf("%s: %w", path, pe.Err)
	}
	return b, err
}

// pemBlocks returns the contents of the PEM blocks of type typ in b.
func pemBlocks(b []byte, typ string) [][]byte {
	var ders [][]byte
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return ders
		}
		if blk.Type == typ {
			ders = append(ders, blk.Bytes)
		}
	}
}

// readCertificates reads the PEM certificates of path; there must be one.
func readCertificates(path string) ([]*x509.Certificate, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for _, der := range pemBlocks(b, "CERTIFICATE") {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return certs, nil
}

// readCRL reads the optional CRL at path, checks it was signed by one of
// cas, and returns its revoked certificates by revocationKey. A missing
// file is no CRL; an outdated one (NextUpdate passed) still applies.
func readCRL(path string, cas []*x509.Certificate) (map[string]bool, error) {
	b, err := readFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ders := pemBlocks(b, "X509 CRL")
	if len(ders) == 0 {
		return nil, fmt.Errorf("%s: no PEM X509 CRL in it", path)
	}
	revoked := make(map[string]bool)
	for _, der := range ders {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		signed := false
		for _, ca := range cas {
			if crl.CheckSignatureFrom(ca) == nil {
				signed = true
				break
			}
		}
		if !signed {
			return nil, fmt.Errorf("%s: not signed by a CA of %s", path, CACertFile)
		}
		for _, e := range crl.RevokedCertificateEntries {
			revoked[revocationKey(crl.RawIssuer, e.SerialNumber.String())] = true
		}
	}
	return revoked, nil
}

// revocationKey names a certificate by issuer and serial number.
func revocationKey(rawIssuer []byte, serial string) string {
	return string(rawIssuer) + "\x00" + serial
}
