package main

import (
	"fmt"
	"net"
	"path"
	"strings"
)

// attachTarget is what an attach snippet names.
type attachTarget struct {
	export   string   // the export name: VOLUME or VOLUME@SNAPSHOT
	readOnly bool     // a snapshot: attach read-only
	ep       endpoint // where it is served
	creds    string   // the client's x509 credentials directory (TLS)
}

// qemuTLSID is the id of the tls-creds-x509 object the QEMU snippets name.
const qemuTLSID = "hlfs-tls0"

// attachSnippet returns the snippet of format for t, and the notes that go
// with it as "# " lines (or "").
func attachSnippet(format string, t attachTarget) (snippet, notes string, err error) {
	switch format {
	case "qemu":
		snippet, notes = qemuSnippet(t)
	case "libvirt":
		snippet, notes = libvirtSnippet(t)
	case "xl":
		return xlSnippet(t)
	case "nbd-client":
		return nbdClientSnippet(t)
	case "uri":
		snippet = t.ep.uri(t.export) + "\n"
		if t.ep.tls {
			notes = "# libnbd reads the client credentials from $HOME/.pki/libnbd or /etc/pki/libnbd; the query parameter tls-certificates=DIR names another\n"
		}
	default:
		return "", "", fmt.Errorf("unknown format %q", format)
	}
	return snippet, notes, nil
}

// qemuSnippet is the -drive argument of qemu-system, with the -blockdev
// form in the notes.
func qemuSnippet(t attachTarget) (snippet, notes string) {
	drive := "file=" + qemuEscape(t.ep.plainURI(t.export)) + ",format=raw,if=virtio,cache=none"
	node := qemuNodeName(t.export)
	blockdev := "driver=nbd,node-name=" + node
	if t.ep.unix() {
		blockdev += ",server.type=unix,server.path=" + qemuEscape(t.ep.socket)
	} else {
		blockdev += ",server.type=inet,server.host=" + t.ep.host + ",server.port=" + t.ep.port
	}
	blockdev += ",export=" + t.export + ",cache.direct=on"
	if t.readOnly {
		drive += ",readonly=on"
		blockdev += ",read-only=on"
	}
	if t.ep.tls {
		drive += ",file.tls-creds=" + qemuTLSID
		blockdev += ",tls-creds=" + qemuTLSID
		notes = fmt.Sprintf("# TLS: create the credentials object before the disk: -object tls-creds-x509,id=%s,endpoint=client,dir=%s\n", qemuTLSID, shellQuote(qemuEscape(t.creds))) +
			"#   (ca-cert.pem; client-cert.pem and client-key.pem too when the server verifies peers)\n"
	}
	notes += "# or, with -blockdev: -blockdev " + shellQuote(blockdev) + " -device virtio-blk-pci,drive=" + node + "\n"
	return "-drive " + shellQuote(drive) + "\n", notes
}

// qemuNodeName is a -blockdev node-name for export: a letter first, then
// letters, digits, "-", "." and "_", at most 31 characters.
func qemuNodeName(export string) string {
	n := "hlfs-" + strings.ReplaceAll(export, "@", "_")
	if len(n) > 31 {
		n = n[:31]
	}
	return n
}

// qemuEscape doubles the commas of a QEMU option value.
func qemuEscape(v string) string { return strings.ReplaceAll(v, ",", ",,") }

// libvirtSnippet is the <disk> element of a libvirt domain.
func libvirtSnippet(t attachTarget) (snippet, notes string) {
	var b strings.Builder
	b.WriteString("<disk type='network' device='disk'>\n")
	b.WriteString("  <driver name='qemu' type='raw' cache='none' io='native'/>\n")
	fmt.Fprintf(&b, "  <source protocol='nbd' name='%s'", xmlAttr(t.export))
	if t.ep.tls {
		b.WriteString(" tls='yes'")
	}
	b.WriteString(">\n")
	if t.ep.unix() {
		fmt.Fprintf(&b, "    <host transport='unix' socket='%s'/>\n", xmlAttr(t.ep.socket))
	} else {
		fmt.Fprintf(&b, "    <host name='%s' port='%s'/>\n", xmlAttr(t.ep.host), xmlAttr(t.ep.port))
	}
	b.WriteString("  </source>\n")
	b.WriteString("  <target dev='vda' bus='virtio'/>\n")
	if t.readOnly {
		b.WriteString("  <readonly/>\n")
	}
	b.WriteString("</disk>\n")
	if t.ep.tls {
		notes = "# TLS: libvirt hands QEMU the client credentials in nbd_tls_x509_cert_dir of /etc/libvirt/qemu.conf (default: default_tls_x509_cert_dir, /etc/pki/qemu)\n"
	}
	return b.String(), notes
}

// xmlAttr escapes v for an XML attribute in single quotes.
func xmlAttr(v string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", `"`, "&quot;").Replace(v)
}

// xlSnippet is an xl disk spec: qdisk with an nbd: target, the nbd-client
// and phy route in the notes; with TLS, which the nbd: target cannot
// carry, the phy spec itself.
func xlSnippet(t attachTarget) (snippet, notes string, err error) {
	access := "rw"
	if t.readOnly {
		access = "ro"
	}
	client, err := nbdClientCommand(t)
	if err != nil {
		return "", "", err
	}
	phy := fmt.Sprintf("format=raw,vdev=xvda,access=%s,backendtype=phy,target=/dev/nbd0", access)
	if t.ep.tls {
		notes = "# TLS: the nbd: target of a qdisk cannot carry TLS; connect /dev/nbd0 in dom0 first with\n#   " + client + "\n"
		return phy + "\n", notes, nil
	}
	target := "nbd:" + net.JoinHostPort(t.ep.host, t.ep.port) // QEMU's legacy nbd: syntax; [IPv6]
	if t.ep.unix() {
		target = "nbd:unix:" + t.ep.socket
	}
	snippet = fmt.Sprintf("format=raw,vdev=xvda,access=%s,backendtype=qdisk,target=%s:exportname=%s\n", access, target, t.export)
	notes = "# QEMU's xen-block backend stat()s its target, so an nbd: target may fail for PV disks;\n" +
		"# the dependable route is nbd-client in dom0, then a phy disk:\n" +
		"#   " + client + "\n" +
		"#   " + phy + "\n"
	return snippet, notes, nil
}

// nbdClientSnippet is the nbd-client command that connects /dev/nbd0.
func nbdClientSnippet(t attachTarget) (snippet, notes string, err error) {
	cmd, err := nbdClientCommand(t)
	if err != nil {
		return "", "", err
	}
	notes = "# needs the nbd kernel module (modprobe nbd) and a free /dev/nbd0 ('nbd-client -c /dev/nbd0' exits 1); 'nbd-client -d /dev/nbd0' disconnects\n"
	if t.ep.tls {
		notes += "# TLS: client-cert.pem and client-key.pem are needed only when the server verifies peers; the server's certificate must name " + t.ep.host + " (else add -tlshostname NAME)\n"
	}
	return cmd + "\n", notes, nil
}

// nbdClientCommand is the nbd-client command line of t.
func nbdClientCommand(t attachTarget) (string, error) {
	var cmd string
	if t.ep.unix() {
		if t.ep.tls {
			return "", fmt.Errorf("nbd-client cannot use TLS over a Unix socket, which %s requires on %s (use --transport tcp, or serve with --tls-unix off)", t.ep.uri(t.export), t.ep.socket)
		}
		cmd = "nbd-client -unix " + shellQuote(t.ep.socket) + " /dev/nbd0 -N " + t.export
	} else {
		cmd = "nbd-client " + t.ep.host + " " + t.ep.port + " /dev/nbd0 -N " + t.export
	}
	if t.readOnly {
		cmd += " -readonly"
	}
	if t.ep.tls {
		cmd += " -cacertfile " + shellQuote(path.Join(t.creds, "ca-cert.pem")) +
			" -certfile " + shellQuote(path.Join(t.creds, "client-cert.pem")) +
			" -keyfile " + shellQuote(path.Join(t.creds, "client-key.pem"))
	}
	return cmd, nil
}

// shellQuote returns s as one shell word: itself when it holds only
// characters no shell treats specially, else in single quotes.
func shellQuote(s string) string {
	safe := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@%+", r))
	}) < 0
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
