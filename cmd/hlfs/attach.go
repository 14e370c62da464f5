package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/lfs"
	"github.com/hlfs/hlfs/nbdserver"
	"github.com/spf13/cobra"
)

// attachFormats are the values of attach --format, in the order help lists them.
var attachFormats = []string{"qemu", "libvirt", "xl", "nbd-client", "uri"}

// attachCmd returns "hlfs attach".
func (c *cli) attachCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "attach VOLUME|VOLUME@SNAPSHOT --format qemu|libvirt|xl|nbd-client|uri [--server ADDR [--tls]] [--transport tcp|unix] [--tls-creds DIR]",
		Short: "print how to attach a served volume to a VM",
		Long: `
Attach prints the snippet that attaches a volume, or a snapshot read-only,
to a VM, with the address of the process serving it, which the volume's
owner lock records ('hlfs serve' writes its --listen address and --socket
there). A volume no client has open has no owner lock: then a running
'hlfs serve' of the whole store (no names), which opens it on demand and
records its addresses in the store index, is used: one on this host first,
else one on another host reachable from here; of several, the first by
host name and pid, named on stderr.

  qemu        the -drive argument of qemu-system (virtio, cache=none)
  libvirt     a <disk type='network'> element for the domain XML
  xl          an xl disk spec: qdisk with an nbd: target
  nbd-client  the nbd-client command that connects /dev/nbd0
  uri         the NBD URI (nbd://HOST:PORT/VOLUME, nbd+unix:///VOLUME?socket=PATH)

The snippet goes to stdout; notes (the -blockdev form of qemu, TLS
credentials, the nbd-client route for xl) go to stderr as # comments.

--server ADDR (HOST:PORT, or unix:PATH) names the server instead, for a
volume nobody serves yet or a server reached through another address; add
--tls when it requires TLS. Without --server the volume must be served: a
TCP address the server listens on comes first, --transport unix picks its
Unix socket. On another host than the server's, only a TCP address that is
not loopback can be used (a wildcard one becomes the server's host name).

With TLS the snippets carry the TLS parts: QEMU's tls-creds object (id
hlfs-tls0; create it with the client credentials in --tls-creds DIR),
libvirt's tls='yes', nbd-client's certificate files and nbds:// URIs; xl
prints the phy disk of the nbd-client route, as an nbd: target has no TLS.`,
		Args: positional("VOLUME"),
	}
	fs := cmd.Flags()
	var o attachOptions
	fs.StringVar(&o.format, "format", "uri", "print the snippet in `FORMAT`: qemu, libvirt, xl, nbd-client or uri")
	fs.StringVar(&o.server, "server", "", "attach to the server at `ADDR` (HOST:PORT or unix:PATH) instead of the one the owner lock names")
	fs.BoolVar(&o.tls, "tls", false, "with --server: the server requires TLS")
	fs.StringVar(&o.transport, "transport", "", "`KIND` of the served address to use: tcp or unix (default: TCP when the server listens on TCP)")
	fs.StringVar(&o.creds, "tls-creds", defaultClientCreds, "the client's x509 credentials `DIR` named by the TLS parts of the snippet")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if !slices.Contains(attachFormats, o.format) {
			return usageError("attach", "--format %q: want one of %s", o.format, strings.Join(attachFormats, ", "))
		}
		if o.transport != "" && o.transport != "tcp" && o.transport != "unix" {
			return usageError("attach", "--transport %q: want tcp or unix", o.transport)
		}
		if o.server != "" && o.transport != "" {
			return usageError("attach", "--transport picks one of the served addresses; --server names one itself")
		}
		if o.tls && o.server == "" {
			return usageError("attach", "--tls needs --server (the owner lock says whether the server uses TLS)")
		}
		return c.attach(args[0], o)
	}
	return cmd
}

// defaultClientCreds is where QEMU looks for x509 credentials by default.
const defaultClientCreds = "/etc/pki/qemu"

// attachOptions are the flags of attach.
type attachOptions struct {
	format    string
	server    string // --server: "HOST:PORT" or "unix:PATH"
	tls       bool   // --tls
	transport string // "", "tcp" or "unix"
	creds     string // --tls-creds
}

// endpoint is one address an export is served on.
type endpoint struct {
	host, port string // TCP; host is a name or an IP address without brackets
	socket     string // a Unix socket's path; then host and port are ""
	tls        bool   // the server offers TLS there (the client must use it)
}

func (e endpoint) unix() bool { return e.socket != "" }

func (c *cli) attach(arg string, o attachOptions) error {
	vol, snap := arg, ""
	var err error
	if strings.Contains(arg, "@") {
		vol, snap, err = snapshotArg(arg)
	} else {
		vol, err = volumeArg(arg)
	}
	if err != nil {
		return err
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	info, err := lfs.Stat(st, vol)
	if err != nil {
		return c.volumeError(vol, err)
	}
	if snap != "" {
		snaps, err := lfs.ListSnapshots(st, vol)
		if err != nil {
			return c.snapshotError(vol, snap, err)
		}
		if !slices.ContainsFunc(snaps, func(s lfs.SnapshotInfo) bool { return s.Name == snap }) {
			return c.snapshotError(vol, snap, lfs.ErrSnapshotNotFound)
		}
	}
	var ep endpoint
	var which string // a note on the server chosen
	if o.server != "" {
		if ep, err = parseServerFlag(o.server); err != nil {
			return err
		}
		ep.tls = o.tls
	} else {
		var servers []lfs.Server
		if info.Owner == nil { // not open: a serve of the whole store opens it on demand
			if servers, err = lfs.Servers(st); err != nil {
				return fmt.Errorf("reading the store index for the processes serving the store: %w", err)
			}
		}
		if ep, which, err = servedEndpoint(arg, info.Owner, servers, c.hostname(), o.transport); err != nil {
			return err
		}
	}
	out, notes, err := attachSnippet(o.format, attachTarget{export: arg, readOnly: snap != "", ep: ep, creds: o.creds})
	if err != nil {
		return err
	}
	fmt.Fprint(c.stdout, out)
	fmt.Fprint(c.stderr, which+notes)
	return nil
}

// hostname is the name owner locks give this host (lfs: $HLFS_HOSTNAME,
// else the system's).
func (c *cli) hostname() string {
	if h := c.getenv("HLFS_HOSTNAME"); h != "" {
		return h
	}
	h, _ := os.Hostname()
	return h
}

// parseServerFlag reads --server: "unix:PATH" or "HOST:PORT".
func parseServerFlag(v string) (endpoint, error) {
	if p, ok := strings.CutPrefix(v, "unix:"); ok {
		if p == "" {
			return endpoint{}, usageError("attach", "--server unix: needs a socket path")
		}
		return endpoint{socket: p}, nil
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" || port == "" {
		return endpoint{}, usageError("attach", "--server %q: want HOST:PORT or unix:PATH", v)
	}
	return endpoint{host: host, port: port}, nil
}

// servedEndpoint picks the address export is served on from owner, the
// live owner lock of its volume (nil: nobody has it open), as seen from the
// host named here: TCP before the Unix socket unless transport says, and
// only addresses reachable from here. A volume nobody has open is served
// by a live serve of the whole store (servers, lfs.Servers), which opens
// it when a client asks: one on this host first, else one on another host
// with an address reachable from here; of several, the first in the order
// of servers, named in note.
func servedEndpoint(export string, owner *lfs.OwnerRecord, servers []lfs.Server, here, transport string) (ep endpoint, note string, err error) {
	if owner == nil {
		return wholeStoreEndpoint(export, servers, here, transport)
	}
	who := fmt.Sprintf("pid %d on host %s", owner.PID, owner.Host)
	if len(owner.NBD) == 0 {
		return endpoint{}, "", fmt.Errorf("%s is held by %s, which records no NBD address (not 'hlfs serve', or an older one); give --server ADDR", export, who)
	}
	ep, skipped, ok := usableEndpoint(owner.NBD, owner.Host, here, transport)
	if !ok {
		return endpoint{}, "", fmt.Errorf("%s is served by %s on %s, none of which can be used from here: %s; run attach on %s or give --server ADDR",
			export, who, strings.Join(owner.NBD, " and "), strings.Join(skipped, ", "), owner.Host)
	}
	return ep, "", nil
}

// wholeStoreEndpoint is servedEndpoint for a volume nobody has open.
func wholeStoreEndpoint(export string, servers []lfs.Server, here, transport string) (endpoint, string, error) {
	var cands, remote []lfs.Server // this host's first, then the others
	for _, s := range servers {
		switch {
		case !s.WholeStore:
		case s.Host == here:
			cands = append(cands, s)
		default:
			remote = append(remote, s)
		}
	}
	cands = append(cands, remote...)
	var tried []string
	for i, s := range cands {
		ep, skipped, ok := usableEndpoint(s.NBD, s.Host, here, transport)
		who := fmt.Sprintf("pid %d on host %s", s.PID, s.Host)
		if !ok {
			tried = append(tried, fmt.Sprintf("%s (%s)", who, strings.Join(skipped, ", ")))
			continue
		}
		note := ""
		if len(cands) > 1 {
			var others []string
			for j, o := range cands {
				if j != i {
					others = append(others, fmt.Sprintf("pid %d on host %s", o.PID, o.Host))
				}
			}
			note = fmt.Sprintf("# %s is not open; %d processes serve the whole store: using %s (not %s)\n",
				export, len(cands), who, strings.Join(others, ", "))
		}
		return ep, note, nil
	}
	if len(tried) > 0 {
		return endpoint{}, "", fmt.Errorf("%s is not open, and the processes serving the whole store cannot be reached from here: %s; run attach on their host or give --server ADDR",
			export, strings.Join(tried, "; "))
	}
	return endpoint{}, "", fmt.Errorf("%s is not served: start 'hlfs serve' (it serves every volume of the store), or give --server ADDR of the server that will", export)
}

// usableEndpoint picks of uris, the NBD URIs a server on host listens on,
// the first one usable from the host named here: TCP before the Unix
// socket unless transport says, a Unix socket or a loopback address only
// on its own host, a wildcard address as the server's host name (or
// localhost there). skipped says why each URI passed over was.
func usableEndpoint(uris []string, host, here, transport string) (ep endpoint, skipped []string, ok bool) {
	local := host == here
	for _, u := range uris {
		ep, err := parseServedURI(u)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s (%v)", u, err))
			continue
		}
		if transport != "" && (transport == "unix") != ep.unix() {
			skipped = append(skipped, u)
			continue
		}
		if ep.unix() {
			if !local {
				skipped = append(skipped, u+" (a Unix socket on "+host+")")
				continue
			}
			return ep, nil, true
		}
		ip := net.ParseIP(ep.host)
		switch {
		case ip != nil && ip.IsUnspecified() && local:
			ep.host = "localhost"
		case ip != nil && ip.IsUnspecified():
			ep.host = host
		case ip != nil && ip.IsLoopback() && !local:
			skipped = append(skipped, u+" (loopback on "+host+")")
			continue
		}
		return ep, nil, true
	}
	return endpoint{}, skipped, false
}

// recordServer records a serve of the whole store listening on nbd in its
// store index object (lfs.RecordServer), for attach to find when a volume
// is not open; the function it returns removes the record (a clean stop).
// Failures are logged: attach then needs --server for volumes not open.
func recordServer(st objstore.Store, nbd []string, logger *slog.Logger) (remove func()) {
	if err := lfs.RecordServer(st, &lfs.ServeRecord{NBD: nbd, WholeStore: true}); err != nil {
		logger.Warn("recording this server in the store index failed: 'hlfs attach' of a volume not open needs --server", "err", err)
	}
	return func() {
		if err := lfs.RecordServer(st, nil); err != nil {
			logger.Warn("removing this server from the store index failed; attach ignores it once the process is gone", "err", err)
		}
	}
}

// parseServedURI reads one OwnerRecord.NBD URI.
func parseServedURI(s string) (endpoint, error) {
	u, err := url.Parse(s)
	if err != nil {
		return endpoint{}, errors.New("not a URI")
	}
	var ep endpoint
	switch u.Scheme {
	case "nbd", "nbds":
		ep.host, ep.port, err = net.SplitHostPort(u.Host)
		if err != nil {
			return endpoint{}, errors.New("no HOST:PORT")
		}
	case "nbd+unix", "nbds+unix":
		ep.socket = u.Query().Get("socket")
		if ep.socket == "" {
			return endpoint{}, errors.New("no socket")
		}
	default:
		return endpoint{}, fmt.Errorf("unknown scheme %q", u.Scheme)
	}
	ep.tls = strings.HasPrefix(u.Scheme, "nbds")
	return ep, nil
}

// listenURIs are the OwnerRecord.NBD URIs of serve's listeners; st is its
// TLS setup (nil: none).
func listenURIs(listeners []net.Listener, st *serveTLS) []string {
	var uris []string
	for _, l := range listeners {
		var ep endpoint
		switch a := l.Addr().(type) {
		case *net.TCPAddr:
			ep.host, ep.port = a.IP.String(), fmt.Sprint(a.Port)
			ep.tls = st != nil && st.tcp != nbdserver.TLSOff
		case *net.UnixAddr:
			ep.socket = a.Name
			if abs, err := filepath.Abs(a.Name); err == nil {
				ep.socket = abs
			}
			ep.tls = st != nil && st.unix != nbdserver.TLSOff
		default:
			continue
		}
		uris = append(uris, ep.uri(""))
	}
	return uris
}

// uri is the NBD URI of export at e (the URI of the server for ""):
// nbd://HOST:PORT/EXPORT or nbd+unix:///EXPORT?socket=PATH, nbds for TLS.
func (e endpoint) uri(export string) string {
	scheme := "nbd"
	if e.tls {
		scheme = "nbds"
	}
	if e.unix() {
		return scheme + "+unix:///" + export + "?socket=" + escapeSocket(e.socket)
	}
	u := scheme + "://" + net.JoinHostPort(e.host, e.port)
	if export != "" {
		u += "/" + export
	}
	return u
}

// plainURI is e.uri(export) with the scheme nbd:// or nbd+unix:// whatever
// the TLS: QEMU takes TLS from its own option.
func (e endpoint) plainURI(export string) string {
	e.tls = false
	return e.uri(export)
}

// escapeSocket escapes a socket path as a URI query value, keeping "/".
func escapeSocket(p string) string {
	s := (&url.URL{Path: p}).EscapedPath()
	return strings.NewReplacer("&", "%26", "+", "%2B", "#", "%23").Replace(s)
}
