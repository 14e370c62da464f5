package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// attach runs `hlfs attach args...` on s's store and returns its stdout
// and stderr; it fails tb if the command fails.
func (s *Server) attach(tb testing.TB, args ...string) (stdout, stderr string) {
	tb.Helper()
	cmd := exec.Command(s.bin, append([]string{"--store", s.StoreURI(), "attach"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		tb.Fatalf("hlfs attach %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// qemuStarts starts qemu-system-x86_64, paused, with args (disks), and
// quits it through its monitor once it started: it returns QEMU's output
// and whether it opened every disk.
func qemuStarts(tb testing.TB, args ...string) (string, bool) {
	tb.Helper()
	cmd := exec.Command("qemu-system-x86_64", append([]string{"-M", "pc", "-nodefaults", "-display", "none", "-S", "-monitor", "stdio"}, args...)...)
	cmd.Stdin = strings.NewReader("quit\n")
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// minimalDomain is a libvirt domain with one disk, for virt-xml-validate.
const minimalDomain = `<domain type='kvm'>
  <name>hlfs-attach</name>
  <memory unit='MiB'>256</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
%s  </devices>
</domain>
`

// TestAttach serves a volume and a snapshot over TCP and a Unix socket and
// uses what `hlfs attach` prints: every URI answers nbdinfo with the
// volume's size, every libvirt <disk> validates in a domain, and QEMU boots
// a guest with the printed -drive argument and writes through it.
func TestAttach(t *testing.T) {
	requireHLFS(t)
	Begin(t, "qemu-system-x86_64", "qemu-io", "virt-xml-validate", "xmllint")
	const size = 64 << 20
	s := newServer(t, Volume{Name: "att", Size: size})
	s.hlfs("snapshot", "create", "att@s1")
	sock := filepath.Join(filepath.Dir(adminSocketPath(t)), "nbd.sock")
	s.Exports = []string{} // every volume and snapshot
	// A volume of a server of the whole store has an owner lock, which
	// attach reads, only while open: a client opens it, and it stays open.
	s.ServeArgs = []string{"--socket", sock, "--admin-socket", "none", "--idle-close", "0"}
	s.Start()
	run(t, "nbdinfo", s.URI("att"))

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"att"}, "nbd://" + s.Addr + "/att\n"},
		{[]string{"att@s1"}, "nbd://" + s.Addr + "/att@s1\n"},
		{[]string{"att", "--transport", "unix"}, "nbd+unix:///att?socket=" + sock + "\n"},
		{[]string{"att", "--server", "unix:" + sock}, "nbd+unix:///att?socket=" + sock + "\n"},
	} {
		uri, _ := s.attach(t, append(c.args, "--format", "uri")...)
		if uri != c.want {
			t.Errorf("attach %v --format uri = %q, want %q", c.args, uri, c.want)
			continue
		}
		if got := strings.TrimSpace(run(t, "nbdinfo", "--size", strings.TrimSpace(uri))); got != "67108864" {
			t.Errorf("nbdinfo --size %s = %s, want 67108864", uri, got)
		}
	}

	dir := t.TempDir()
	for i, args := range [][]string{{"att"}, {"att@s1", "--transport", "unix"}, {"att", "--server", "hv1.example:10809", "--tls"}} {
		disk, _ := s.attach(t, append(args, "--format", "libvirt")...)
		var indented strings.Builder
		for _, line := range strings.SplitAfter(disk, "\n") {
			if line != "" {
				indented.WriteString("    " + line)
			}
		}
		f := filepath.Join(dir, "domain"+string(rune('0'+i))+".xml")
		if err := os.WriteFile(f, []byte(strings.Replace(minimalDomain, "%s", indented.String(), 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("virt-xml-validate", f, "domain").CombinedOutput(); err != nil {
			t.Errorf("virt-xml-validate of attach %v --format libvirt: %v\n%s\n%s", args, err, out, disk)
		}
	}

	// A snapshot's -drive opens read-only; without readonly=on QEMU refuses it.
	line, _ := s.attach(t, "att@s1", "--format", "qemu")
	drive, _ := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "-drive ")
	if out, ok := qemuStarts(t, "-drive", drive); !ok || !strings.HasSuffix(drive, ",readonly=on") {
		t.Errorf("QEMU with -drive %s:\n%s", drive, out)
	}
	if out, ok := qemuStarts(t, "-drive", strings.TrimSuffix(drive, ",readonly=on")); ok || !strings.Contains(out, "read-only") {
		t.Errorf("QEMU opened the snapshot read-write:\n%s", out)
	}

	// QEMU boots with the printed -drive and the guest writes through it.
	line, _ = s.attach(t, "att", "--format", "qemu")
	drive, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "-drive ")
	if !ok || strings.ContainsAny(drive, "' \n") {
		t.Fatalf("attach --format qemu printed %q, want one unquoted -drive argument", line)
	}
	r := RunGuest(t, "", "head -c 65536 /dev/zero | tr '\\000' 'h' > /dev/vda\nsync\necho WROTE", GuestOptions{Drive: drive})
	if r.ExitCode != 0 || !strings.Contains(r.Output, "WROTE") {
		t.Fatalf("guest with -drive %s: exit %d\n%s", drive, r.ExitCode, r.Output)
	}
	out := run(t, "qemu-io", "-r", "-f", "raw", "-c", "read -P 0x68 0 64k", "-c", "read -P 0 64k 64k", s.URI("att"))
	if strings.Contains(out, "Pattern verification failed") || strings.Count(out, "read 65536/65536") != 2 {
		t.Errorf("the guest's write is not on the volume:\n%s", out)
	}
}

// TestAttachTLS: the URI attach prints for a server that requires TLS is
// nbds://, and nbdinfo connects with it and the client credentials.
func TestAttachTLS(t *testing.T) {
	Begin(t)
	p := newTLSPKI(t, false)
	s := startTLSServer(t, p, nil, Volume{Name: "att", Size: 1 << 20})
	uri, _ := s.attach(t, "att", "--format", "uri")
	if want := "nbds://" + s.Addr + "/att\n"; uri != want {
		t.Fatalf("attach --format uri = %q, want %q", uri, want)
	}
	if got := strings.TrimSpace(run(t, "nbdinfo", "--size", strings.TrimSpace(uri)+"?tls-certificates="+p.client)); got != "1048576" {
		t.Errorf("nbdinfo --size = %s, want 1048576", got)
	}
	// QEMU opens the printed -drive with the object the note names.
	line, notes := s.attach(t, "att", "--format", "qemu", "--tls-creds", p.client)
	object := "tls-creds-x509,id=hlfs-tls0,endpoint=client,dir=" + p.client
	drive, _ := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "-drive ")
	if !strings.HasSuffix(drive, ",file.tls-creds=hlfs-tls0") || !strings.Contains(notes, "-object "+object+"\n") {
		t.Fatalf("attach --format qemu with TLS:\n%s%s", line, notes)
	}
	if out, ok := qemuStarts(t, "-object", object, "-drive", drive); !ok {
		t.Errorf("QEMU with -object %s -drive %s:\n%s", object, drive, out)
	}
	if out, ok := qemuStarts(t, "-object", object, "-drive", strings.TrimSuffix(drive, ",file.tls-creds=hlfs-tls0")); ok {
		t.Errorf("QEMU opened the disk without TLS:\n%s", out)
	}
}

// TestAttachClosedVolume: a serve of the whole store holds no owner lock of
// a volume no client opened, yet attach finds it (its record in the store
// index) and the URI it prints works; once that serve is stopped, or
// killed, attach says the volume is not served.
func TestAttachClosedVolume(t *testing.T) {
	requireHLFS(t)
	Begin(t, "nbdinfo")
	s := newServer(t, Volume{Name: "cold", Size: 16 << 20})
	s.hlfs("snapshot", "create", "cold@s1")
	s.Exports = []string{} // every volume, opened on demand
	s.ServeArgs = []string{"--admin-socket", "none"}
	notServed := func(when string) {
		t.Helper()
		cmd := exec.Command(s.bin, "--store", s.StoreURI(), "attach", "cold", "--format", "uri")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "cold is not served: start 'hlfs serve'") {
			t.Errorf("attach %s: %v\n%s", when, err, out)
		}
	}
	for _, stop := range []func(){s.Stop, s.Kill} {
		s.Start()
		if pid := s.owner(t, "cold"); pid != 0 {
			t.Fatalf("cold is open (pid %d) before any client asked for it", pid)
		}
		for _, export := range []string{"cold", "cold@s1"} {
			uri, notes := s.attach(t, export, "--format", "uri")
			if want := s.URI(export) + "\n"; uri != want || notes != "" {
				t.Fatalf("attach %s --format uri = %q (stderr %q), want %q", export, uri, notes, want)
			}
			if got := strings.TrimSpace(run(t, "nbdinfo", "--size", strings.TrimSpace(uri))); got != "16777216" {
				t.Errorf("nbdinfo --size %s = %s, want 16777216", uri, got)
			}
		}
		stop()
		notServed("after the serve stopped")
	}
}
