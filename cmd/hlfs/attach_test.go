package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hlfs/hlfs/lfs"
	"github.com/hlfs/hlfs/nbdserver"
)

func TestAttachSnippets(t *testing.T) {
	tcp := endpoint{host: "10.0.0.5", port: "10809"}
	unix := endpoint{socket: "/run/hlfs/nbd.sock"}
	tcpTLS := endpoint{host: "hv1.example", port: "10809", tls: true}
	unixTLS := endpoint{socket: "/run/hlfs/nbd.sock", tls: true}
	odd := endpoint{socket: "/tmp/a,b c/nbd.sock"}
	vol := attachTarget{export: "vm1", ep: tcp, creds: defaultClientCreds}
	snap := attachTarget{export: "vm1@s1", readOnly: true, ep: tcp, creds: defaultClientCreds}
	with := func(t attachTarget, ep endpoint) attachTarget { t.ep = ep; return t }
	xlNote := func(client, access string) string {
		return "# QEMU's xen-block backend stat()s its target, so an nbd: target may fail for PV disks;\n" +
			"# the dependable route is nbd-client in dom0, then a phy disk:\n" +
			"#   " + client + "\n" +
			"#   format=raw,vdev=xvda,access=" + access + ",backendtype=phy,target=/dev/nbd0\n"
	}
	const nbdNote = "# needs the nbd kernel module (modprobe nbd) and a free /dev/nbd0 ('nbd-client -c /dev/nbd0' exits 1); 'nbd-client -d /dev/nbd0' disconnects\n"
	const tlsObject = "# TLS: create the credentials object before the disk: -object tls-creds-x509,id=hlfs-tls0,endpoint=client,dir=/etc/pki/qemu\n" +
		"#   (ca-cert.pem; client-cert.pem and client-key.pem too when the server verifies peers)\n"
	for _, c := range []struct {
		name, format string
		target       attachTarget
		want, notes  string
	}{
		{"qemu tcp", "qemu", vol,
			"-drive file=nbd://10.0.0.5:10809/vm1,format=raw,if=virtio,cache=none\n",
			"# or, with -blockdev: -blockdev driver=nbd,node-name=hlfs-vm1,server.type=inet,server.host=10.0.0.5,server.port=10809,export=vm1,cache.direct=on -device virtio-blk-pci,drive=hlfs-vm1\n"},
		{"qemu snapshot unix", "qemu", with(snap, unix),
			"-drive 'file=nbd+unix:///vm1@s1?socket=/run/hlfs/nbd.sock,format=raw,if=virtio,cache=none,readonly=on'\n",
			"# or, with -blockdev: -blockdev driver=nbd,node-name=hlfs-vm1_s1,server.type=unix,server.path=/run/hlfs/nbd.sock,export=vm1@s1,cache.direct=on,read-only=on -device virtio-blk-pci,drive=hlfs-vm1_s1\n"},
		{"qemu tls", "qemu", with(vol, tcpTLS),
			"-drive file=nbd://hv1.example:10809/vm1,format=raw,if=virtio,cache=none,file.tls-creds=hlfs-tls0\n",
			tlsObject + "# or, with -blockdev: -blockdev driver=nbd,node-name=hlfs-vm1,server.type=inet,server.host=hv1.example,server.port=10809,export=vm1,cache.direct=on,tls-creds=hlfs-tls0 -device virtio-blk-pci,drive=hlfs-vm1\n"},
		{"qemu odd socket path", "qemu", with(vol, odd),
			"-drive 'file=nbd+unix:///vm1?socket=/tmp/a,,b%20c/nbd.sock,format=raw,if=virtio,cache=none'\n",
			"# or, with -blockdev: -blockdev 'driver=nbd,node-name=hlfs-vm1,server.type=unix,server.path=/tmp/a,,b c/nbd.sock,export=vm1,cache.direct=on' -device virtio-blk-pci,drive=hlfs-vm1\n"},
		{"libvirt tcp", "libvirt", vol, `<disk type='network' device='disk'>
  <driver name='qemu' type='raw' cache='none' io='native'/>
  <source protocol='nbd' name='vm1'>
    <host name='10.0.0.5' port='10809'/>
  </source>
  <target dev='vda' bus='virtio'/>
</disk>
`, ""},
		{"libvirt snapshot unix tls", "libvirt", with(snap, unixTLS), `<disk type='network' device='disk'>
  <driver name='qemu' type='raw' cache='none' io='native'/>
  <source protocol='nbd' name='vm1@s1' tls='yes'>
    <host transport='unix' socket='/run/hlfs/nbd.sock'/>
  </source>
  <target dev='vda' bus='virtio'/>
  <readonly/>
</disk>
`, "# TLS: libvirt hands QEMU the client credentials in nbd_tls_x509_cert_dir of /etc/libvirt/qemu.conf (default: default_tls_x509_cert_dir, /etc/pki/qemu)\n"},
		{"xl tcp", "xl", vol,
			"format=raw,vdev=xvda,access=rw,backendtype=qdisk,target=nbd:10.0.0.5:10809:exportname=vm1\n",
			xlNote("nbd-client 10.0.0.5 10809 /dev/nbd0 -N vm1", "rw")},
		{"xl snapshot unix", "xl", with(snap, unix),
			"format=raw,vdev=xvda,access=ro,backendtype=qdisk,target=nbd:unix:/run/hlfs/nbd.sock:exportname=vm1@s1\n",
			xlNote("nbd-client -unix /run/hlfs/nbd.sock /dev/nbd0 -N vm1@s1 -readonly", "ro")},
		{"xl tls", "xl", with(vol, tcpTLS),
			"format=raw,vdev=xvda,access=rw,backendtype=phy,target=/dev/nbd0\n",
			"# TLS: the nbd: target of a qdisk cannot carry TLS; connect /dev/nbd0 in dom0 first with\n" +
				"#   nbd-client hv1.example 10809 /dev/nbd0 -N vm1 -cacertfile /etc/pki/qemu/ca-cert.pem -certfile /etc/pki/qemu/client-cert.pem -keyfile /etc/pki/qemu/client-key.pem\n"},
		{"xl ipv6", "xl", with(vol, endpoint{host: "fd00::5", port: "10809"}),
			"format=raw,vdev=xvda,access=rw,backendtype=qdisk,target=nbd:[fd00::5]:10809:exportname=vm1\n",
			xlNote("nbd-client fd00::5 10809 /dev/nbd0 -N vm1", "rw")},
		{"nbd-client tcp", "nbd-client", vol, "nbd-client 10.0.0.5 10809 /dev/nbd0 -N vm1\n", nbdNote},
		{"nbd-client snapshot unix", "nbd-client", with(snap, unix), "nbd-client -unix /run/hlfs/nbd.sock /dev/nbd0 -N vm1@s1 -readonly\n", nbdNote},
		{"nbd-client tls", "nbd-client", attachTarget{export: "vm1", ep: tcpTLS, creds: "/etc/hlfs/client"},
			"nbd-client hv1.example 10809 /dev/nbd0 -N vm1 -cacertfile /etc/hlfs/client/ca-cert.pem -certfile /etc/hlfs/client/client-cert.pem -keyfile /etc/hlfs/client/client-key.pem\n",
			nbdNote + "# TLS: client-cert.pem and client-key.pem are needed only when the server verifies peers; the server's certificate must name hv1.example (else add -tlshostname NAME)\n"},
		{"uri tcp", "uri", vol, "nbd://10.0.0.5:10809/vm1\n", ""},
		{"uri ipv6", "uri", with(vol, endpoint{host: "fd00::5", port: "10809"}), "nbd://[fd00::5]:10809/vm1\n", ""},
		{"uri snapshot unix", "uri", with(snap, unix), "nbd+unix:///vm1@s1?socket=/run/hlfs/nbd.sock\n", ""},
		{"uri tls", "uri", with(vol, tcpTLS), "nbds://hv1.example:10809/vm1\n",
			"# libnbd reads the client credentials from $HOME/.pki/libnbd or /etc/pki/libnbd; the query parameter tls-certificates=DIR names another\n"},
		{"uri unix tls", "uri", with(vol, unixTLS), "nbds+unix:///vm1?socket=/run/hlfs/nbd.sock\n",
			"# libnbd reads the client credentials from $HOME/.pki/libnbd or /etc/pki/libnbd; the query parameter tls-certificates=DIR names another\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, notes, err := attachSnippet(c.format, c.target)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("snippet:\n%s\nwant:\n%s", got, c.want)
			}
			if notes != c.notes {
				t.Errorf("notes:\n%s\nwant:\n%s", notes, c.notes)
			}
		})
	}
	for _, format := range []string{"nbd-client", "xl"} {
		if _, _, err := attachSnippet(format, with(vol, unixTLS)); err == nil || !strings.Contains(err.Error(), "nbd-client cannot use TLS over a Unix socket") {
			t.Errorf("%s over a Unix socket with TLS: %v", format, err)
		}
	}
}

func TestQemuNodeName(t *testing.T) {
	long := strings.Repeat("x", 128)
	for in, want := range map[string]string{"vm1": "hlfs-vm1", "vm1@s1": "hlfs-vm1_s1", long: "hlfs-" + long[:26]} {
		if got := qemuNodeName(in); got != want {
			t.Errorf("qemuNodeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestServedEndpoint(t *testing.T) {
	owner := func(host string, uris ...string) *lfs.OwnerRecord {
		return &lfs.OwnerRecord{Host: host, PID: 42, NBD: uris}
	}
	both := []string{"nbd://127.0.0.1:10809", "nbd+unix:///?socket=/run/hlfs.sock"}
	for _, c := range []struct {
		name      string
		owner     *lfs.OwnerRecord
		transport string
		want      endpoint
		err       string
	}{
		{"tcp first", owner("hv1", both...), "", endpoint{host: "127.0.0.1", port: "10809"}, ""},
		{"unix asked", owner("hv1", both...), "unix", endpoint{socket: "/run/hlfs.sock"}, ""},
		{"tcp asked, only unix", owner("hv1", both[1]), "tcp", endpoint{},
			"vm1 is served by pid 42 on host hv1 on nbd+unix:///?socket=/run/hlfs.sock, none of which can be used from here: nbd+unix:///?socket=/run/hlfs.sock; run attach on hv1 or give --server ADDR"},
		{"tls", owner("hv1", "nbds://127.0.0.1:10809", "nbd+unix:///?socket=/s"), "", endpoint{host: "127.0.0.1", port: "10809", tls: true}, ""},
		{"wildcard here", owner("hv1", "nbd://0.0.0.0:10809"), "", endpoint{host: "localhost", port: "10809"}, ""},
		{"ipv6 wildcard here", owner("hv1", "nbd://[::]:10809"), "", endpoint{host: "localhost", port: "10809"}, ""},
		{"wildcard elsewhere", owner("hv2", "nbd://[::]:10809"), "", endpoint{host: "hv2", port: "10809"}, ""},
		{"address elsewhere", owner("hv2", "nbd+unix:///?socket=/s", "nbd://10.1.2.3:10809"), "", endpoint{host: "10.1.2.3", port: "10809"}, ""},
		{"loopback elsewhere", owner("hv2", both...), "", endpoint{},
			"vm1 is served by pid 42 on host hv2 on nbd://127.0.0.1:10809 and nbd+unix:///?socket=/run/hlfs.sock, none of which can be used from here: nbd://127.0.0.1:10809 (loopback on hv2), nbd+unix:///?socket=/run/hlfs.sock (a Unix socket on hv2); run attach on hv2 or give --server ADDR"},
		{"not served", nil, "", endpoint{},
			"vm1 is not served: start 'hlfs serve' (it serves every volume of the store), or give --server ADDR of the server that will"},
		{"no addresses", owner("hv1"), "", endpoint{},
			"vm1 is held by pid 42 on host hv1, which records no NBD address (not 'hlfs serve', or an older one); give --server ADDR"},
		{"garbage", owner("hv1", "http://x", "nbd+unix:///", "nbd://nohost"), "", endpoint{},
			`none of which can be used from here: http://x (unknown scheme "http"), nbd+unix:/// (no socket), nbd://nohost (no HOST:PORT)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, note, err := servedEndpoint("vm1", c.owner, nil, "hv1", c.transport)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || got != c.want || note != "" {
				t.Fatalf("got %+v, %q, %v; want %+v", got, note, err, c.want)
			}
		})
	}
}

// A volume nobody has open is attached through a serve of the whole store:
// this host's first, then another host's reachable from here; the owner
// lock wins over them when there is one.
func TestServedEndpointWholeStore(t *testing.T) {
	srv := func(host string, pid int, whole bool, uris ...string) lfs.Server {
		return lfs.Server{Host: host, PID: pid, ServeRecord: lfs.ServeRecord{NBD: uris, WholeStore: whole}}
	}
	loop := srv("hv1", 7, true, "nbd://127.0.0.1:10809", "nbd+unix:///?socket=/run/hlfs.sock")
	loop2 := srv("hv1", 9, true, "nbd://127.0.0.1:10900")
	far := srv("hv0", 5, true, "nbd://0.0.0.0:10809")
	farLoop := srv("hv2", 3, true, "nbd://127.0.0.1:10809")
	named := srv("hv1", 4, false, "nbd://127.0.0.1:10700")
	const notServed = "vm1 is not served: start 'hlfs serve' (it serves every volume of the store), or give --server ADDR of the server that will"
	for _, c := range []struct {
		name      string
		owner     *lfs.OwnerRecord
		servers   []lfs.Server
		transport string
		want      endpoint
		note, err string
	}{
		{"none", nil, nil, "", endpoint{}, "", notServed},
		{"named volumes only", nil, []lfs.Server{named}, "", endpoint{}, "", notServed},
		{"this host", nil, []lfs.Server{named, loop}, "", endpoint{host: "127.0.0.1", port: "10809"}, "", ""},
		{"this host, unix", nil, []lfs.Server{loop}, "unix", endpoint{socket: "/run/hlfs.sock"}, "", ""},
		{"this host before another", nil, []lfs.Server{far, loop}, "", endpoint{host: "127.0.0.1", port: "10809"},
			"# vm1 is not open; 2 processes serve the whole store: using pid 7 on host hv1 (not pid 5 on host hv0)\n", ""},
		{"two here: the first", nil, []lfs.Server{loop, loop2}, "", endpoint{host: "127.0.0.1", port: "10809"},
			"# vm1 is not open; 2 processes serve the whole store: using pid 7 on host hv1 (not pid 9 on host hv1)\n", ""},
		{"another host, reachable", nil, []lfs.Server{farLoop, far}, "", endpoint{host: "hv0", port: "10809"},
			"# vm1 is not open; 2 processes serve the whole store: using pid 5 on host hv0 (not pid 3 on host hv2)\n", ""},
		{"another host, loopback", nil, []lfs.Server{farLoop}, "", endpoint{}, "",
			"vm1 is not open, and the processes serving the whole store cannot be reached from here: pid 3 on host hv2 (nbd://127.0.0.1:10809 (loopback on hv2)); run attach on their host or give --server ADDR"},
		{"the owner wins", &lfs.OwnerRecord{Host: "hv1", PID: 42, NBD: []string{"nbd://127.0.0.1:11000"}}, []lfs.Server{loop},
			"", endpoint{host: "127.0.0.1", port: "11000"}, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, note, err := servedEndpoint("vm1", c.owner, c.servers, "hv1", c.transport)
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || got != c.want || note != c.note {
				t.Fatalf("got %+v, %q, %v; want %+v, %q", got, note, err, c.want, c.note)
			}
		})
	}
}

func TestListenURIs(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	dir := t.TempDir()
	t.Chdir(dir)
	unix, err := net.Listen("unix", "nbd&1.sock") // relative: recorded absolute
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close()
	port := tcp.Addr().(*net.TCPAddr).Port
	ls := []net.Listener{tcp, unix}
	sock := filepath.Join(dir, "nbd%261.sock")
	for _, c := range []struct {
		st   *serveTLS
		want string
	}{
		{nil, "nbd://127.0.0.1:%d nbd+unix:///?socket=" + sock},
		{&serveTLS{tcp: nbdserver.TLSRequire, unix: nbdserver.TLSOff}, "nbds://127.0.0.1:%d nbd+unix:///?socket=" + sock},
		{&serveTLS{tcp: nbdserver.TLSOn, unix: nbdserver.TLSRequire}, "nbds://127.0.0.1:%d nbds+unix:///?socket=" + sock},
	} {
		want := strings.Replace(c.want, "%d", strconv.Itoa(port), 1)
		if got := strings.Join(listenURIs(ls, c.st), " "); got != want {
			t.Errorf("listenURIs = %s, want %s", got, want)
		}
		// What serve records, attach reads back.
		for _, u := range listenURIs(ls, c.st) {
			ep, err := parseServedURI(u)
			if err != nil || (ep.unix() && ep.socket != filepath.Join(dir, "nbd&1.sock")) || ep.uri("") != u {
				t.Errorf("parseServedURI(%s) = %+v, %v", u, ep, err)
			}
		}
	}
}

func TestAttachCommand(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	mustHLFS(t, store, "create", "idle", "--size", "1M")
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")

	// Not served: an error that says what to do; --server works without.
	wantError(t, hlfs(t, store, "attach", "vm1", "--format", "qemu"), 1,
		"vm1 is not served: start 'hlfs serve'", "or give --server ADDR")
	if got := mustHLFS(t, store, "attach", "vm1", "--server", "hv9:10809"); got != "nbd://hv9:10809/vm1\n" {
		t.Errorf("attach --server: %q", got)
	}
	if got := mustHLFS(t, store, "attach", "vm1@s1", "--server", "unix:/run/x.sock", "--format", "nbd-client"); got != "nbd-client -unix /run/x.sock /dev/nbd0 -N vm1@s1 -readonly\n" {
		t.Errorf("attach --server unix: %q", got)
	}
	if got := mustHLFS(t, store, "attach", "vm1", "--server", "hv9:10809", "--tls"); got != "nbds://hv9:10809/vm1\n" {
		t.Errorf("attach --server --tls: %q", got)
	}
	wantError(t, hlfs(t, store, "attach", "nope"), 1, `no volume "nope" in store `+store)
	wantError(t, hlfs(t, store, "attach", "vm1@nope"), 1, `no snapshot "nope" of volume vm1`)
	wantError(t, hlfs(t, store, "attach", "vm1", "--format", "vmware"), 2, `--format "vmware": want one of qemu, libvirt, xl, nbd-client, uri`)
	wantError(t, hlfs(t, store, "attach", "vm1", "--tls"), 2, "--tls needs --server")
	wantError(t, hlfs(t, store, "attach", "vm1", "--server", "hv9"), 2, `--server "hv9": want HOST:PORT or unix:PATH`)
	wantError(t, hlfs(t, store, "attach", "vm1", "--transport", "rdma"), 2, `--transport "rdma": want tcp or unix`)
	wantError(t, hlfs(t, store, "attach"), 2, "missing VOLUME")

	// Served: the owner lock names the listeners, attach prints them.
	sock := filepath.Join(t.TempDir(), "nbd.sock")
	// Named, so that they are open (serving the whole store opens a volume
	// only when a client asks for it).
	addr, _, stop := startServe(t, store, "vm1", "--listen", "127.0.0.1:0", "--socket", sock, "--admin-socket", "none", "vm1", "idle")
	info := statVolume(t, dir, "vm1")
	if info.Owner == nil || strings.Join(info.Owner.NBD, " ") != "nbd://"+addr+" nbd+unix:///?socket="+sock {
		t.Fatalf("owner lock of vm1: %+v", info.Owner)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"vm1"}, "nbd://" + addr + "/vm1\n"},
		{[]string{"vm1@s1", "--format", "uri"}, "nbd://" + addr + "/vm1@s1\n"},
		{[]string{"vm1", "--transport", "unix"}, "nbd+unix:///vm1?socket=" + sock + "\n"},
		{[]string{"idle", "--format", "qemu"}, "-drive file=nbd://" + addr + "/idle,format=raw,if=virtio,cache=none\n"},
		{[]string{"vm1@s1", "--format", "xl"}, "format=raw,vdev=xvda,access=ro,backendtype=qdisk,target=nbd:" + addr + ":exportname=vm1@s1\n"},
		{[]string{"vm1", "--server", "10.9.9.9:10809"}, "nbd://10.9.9.9:10809/vm1\n"},
	} {
		r := hlfs(t, store, append([]string{"attach"}, c.args...)...)
		if r.code != 0 || r.stdout != c.want {
			t.Errorf("attach %v: exit %d\n%s%s\nwant %s", c.args, r.code, r.stdout, r.stderr, c.want)
		}
	}
	// Seen from another host, the loopback address and the socket are useless.
	t.Setenv("HLFS_HOSTNAME", "elsewhere")
	r := hlfs(t, store, "attach", "vm1")
	wantError(t, r, 1, "(loopback on ", "(a Unix socket on ", "give --server ADDR")
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
}

// A serve of the whole store has no owner lock on a volume no client has
// open: attach finds it in the store index instead, while it runs and not
// after; records of dead processes are ignored.
func TestAttachWholeStoreServe(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	mustHLFS(t, store, "snapshot", "create", "vm1@s1")
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if h := os.Getenv("HLFS_HOSTNAME"); h != "" {
		host = h
	}
	// Stale records: a process of this host that exited, and one of
	// another host not rewritten for 3 minutes.
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	stale := func(name, host string, pid int, updated time.Time) {
		obj := fmt.Sprintf(`{"version":1,"writer":{"host":%q,"pid":%d,"pid_start":"1","token":"00000000000000aa"},`+
			`"updated":%q,"serve":{"nbd":["nbd://10.9.9.9:10809"],"whole_store":true},"entries":[]}`, host, pid, updated.Format(time.RFC3339Nano))
		if err := os.WriteFile(filepath.Join(dir, ".index", name), []byte(obj), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stale("dead-1-00000000000000aa", host, exited.Process.Pid, time.Now().UTC())
	stale("far-2-00000000000000aa", "far-away-host", 2, time.Now().UTC().Add(-3*time.Minute))
	notServed := []string{"vm1 is not served: start 'hlfs serve'", "or give --server ADDR"}
	wantError(t, hlfs(t, store, "attach", "vm1"), 1, notServed...)

	addr, _, stop := startServe(t, store, "every volume", "--listen", "127.0.0.1:0", "--admin-socket", "none")
	for _, arg := range []string{"vm1", "vm1@s1"} {
		r := hlfs(t, store, "attach", arg, "--format", "uri")
		if want := "nbd://" + addr + "/" + arg + "\n"; r.code != 0 || r.stdout != want || r.stderr != "" {
			t.Errorf("attach %s: exit %d, stdout %q, stderr %q; want %q", arg, r.code, r.stdout, r.stderr, want)
		}
	}
	if info := statVolume(t, dir, "vm1"); info.Owner != nil {
		t.Errorf("vm1 opened by attach: %+v", info.Owner)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	wantError(t, hlfs(t, store, "attach", "vm1", "--format", "uri"), 1, notServed...)
}

// TestServeClosesListenersOnFailure: serve listens before it opens the
// volumes (their owner locks record the listeners), so a volume that fails
// to open must leave neither the port nor the socket file behind.
func TestServeClosesListenersOnFailure(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "ok", "--size", "1M")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	sock := filepath.Join(t.TempDir(), "nbd.sock")
	wantError(t, hlfs(t, store, "serve", "--listen", addr, "--socket", sock, "--admin-socket", "none", "ok", "nope"), 1,
		"cannot serve nope", `no volume "nope"`)
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file left behind: %v", err)
	}
	if l, err := net.Listen("tcp", addr); err != nil {
		t.Errorf("port still taken: %v", err)
	} else {
		l.Close()
	}
	if info := statVolume(t, dir, "ok"); info.Owner != nil {
		t.Errorf("ok still owned: %+v", info.Owner)
	}
}
