package nbdserver

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// DNList is a list of client certificate subject distinguished names
// allowed to use the server; its Authorize method fits
// TLSOptions.Authorize. Safe for concurrent use (it never changes).
//
// The file format: one DN a line, blank lines and lines starting with '#'
// ignored. A DN is "TYPE=value" attributes separated by ',' (or '+' within
// a multi-valued RDN), in either order: most specific first as RFC 4514,
// QEMU's authz-simple identities and `openssl x509 -noout -subject -nameopt
// RFC2253` write it ("CN=client1,O=Example"), or in certificate order as
// `openssl x509 -noout -subject` prints it ("subject=O = Example, CN =
// client1"). Spaces around '=', ',' and '+' are ignored, as is a leading
// "subject="; '\' escapes the next character or two hex digits. Types: CN, C, O, OU, L, ST, STREET,
// POSTALCODE, SERIALNUMBER, DC, UID, EMAILADDRESS (or EMAIL, E), or a
// dotted OID. Types are case-insensitive, values are not.
type DNList struct {
	path string
	dns  [][]dnAttr
}

// dnAttr is one attribute of a DN.
type dnAttr struct{ typ, value string }

// dnTypes maps the attribute names accepted in a DN list to OIDs.
var dnTypes = map[string]string{
	"CN": "2.5.4.3", "C": "2.5.4.6", "O": "2.5.4.10", "OU": "2.5.4.11", "L": "2.5.4.7",
	"ST": "2.5.4.8", "STREET": "2.5.4.9", "POSTALCODE": "2.5.4.17", "SERIALNUMBER": "2.5.4.5",
	"DC": "0.9.2342.19200300.100.1.25", "UID": "0.9.2342.19200300.100.1.1",
	"EMAILADDRESS": "1.2.840.113549.1.9.1", "EMAIL": "1.2.840.113549.1.9.1", "E": "1.2.840.113549.1.9.1",
}

// LoadDNList reads a DN list file. Its errors are one line naming the file
// (and line).
func LoadDNList(path string) (*DNList, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	l := &DNList{path: path}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		dn, err := parseDN(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		l.dns = append(l.dns, dn)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(l.dns) == 0 {
		return nil, fmt.Errorf("%s: no distinguished name in it (every client would be refused)", path)
	}
	return l, nil
}

// Len returns the number of DNs listed.
func (l *DNList) Len() int { return len(l.dns) }

// Allows reports whether the subject of cert is listed.
func (l *DNList) Allows(cert *x509.Certificate) bool {
	subj := certDN(cert)
	rev := slices.Clone(subj)
	slices.Reverse(rev)
	for _, dn := range l.dns {
		if slices.Equal(dn, subj) || slices.Equal(dn, rev) {
			return true
		}
	}
	return false
}

// Authorize allows a TLS session whose client certificate is listed.
func (l *DNList) Authorize(cs *tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("a client certificate is required")
	}
	if c := cs.PeerCertificates[0]; !l.Allows(c) {
		return fmt.Errorf("client certificate %q is not authorized on this server", c.Subject.String())
	}
	return nil
}

// certDN returns the subject attributes of cert in certificate order.
func certDN(cert *x509.Certificate) []dnAttr {
	var dn []dnAttr
	for _, rdn := range cert.Subject.ToRDNSequence() {
		for _, a := range rdn {
			v, ok := a.Value.(string)
			if !ok {
				v = fmt.Sprint(a.Value)
			}
			dn = append(dn, dnAttr{a.Type.String(), v})
		}
	}
	return dn
}

// parseDN parses one DN of a list (see DNList) into attributes in the
// order written.
func parseDN(s string) ([]dnAttr, error) {
	if len(s) >= 8 && strings.EqualFold(s[:8], "subject=") {
		s = s[8:]
	}
	var dn []dnAttr
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, fmt.Errorf("%q: want TYPE=value", s)
		}
		typ := strings.ToUpper(strings.TrimSpace(s[:eq]))
		oid, ok := dnTypes[typ]
		if !ok {
			if !isOID(typ) {
				return nil, fmt.Errorf("unknown attribute type %q", strings.TrimSpace(s[:eq]))
			}
			oid = typ
		}
		s = strings.TrimLeft(s[eq+1:], " ")
		var v strings.Builder
		i := 0
		for ; i < len(s) && s[i] != ',' && s[i] != '+'; i++ {
			if s[i] != '\\' {
				v.WriteByte(s[i])
				continue
			}
			if i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
				v.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
				i += 2
			} else if i+1 < len(s) {
				v.WriteByte(s[i+1])
				i++
			} else {
				return nil, errors.New("'\\' at the end of the line")
			}
		}
		val := strings.TrimRight(v.String(), " ")
		if val == "" {
			return nil, fmt.Errorf("empty value for %s", typ)
		}
		dn = append(dn, dnAttr{oid, val})
		if i < len(s) {
			i++ // the separator
			if strings.TrimSpace(s[i:]) == "" {
				return nil, errors.New("a separator at the end of the line")
			}
		}
		s = strings.TrimLeft(s[i:], " ")
	}
	return dn, nil
}

// isOID reports whether s is a dotted object identifier.
func isOID(s string) bool {
	parts := strings.Split(s, ".")
	for _, part := range parts {
		if part == "" || len(part) > 9 || strings.Trim(part, "0123456789") != "" {
			return false
		}
	}
	return len(parts) >= 2
}

func isHex(b byte) bool {
	return '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F'
}

func unhex(b byte) byte {
	switch {
	case b <= '9':
		return b - '0'
	case b >= 'a':
		return b - 'a' + 10
	}
	return b - 'A' + 10
}
