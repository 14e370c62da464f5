package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hlfs/hlfs/internal/admin"
	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/internal/journal"
	"github.com/hlfs/hlfs/internal/metrics"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/lfs"
	"github.com/hlfs/hlfs/nbdserver"
	"github.com/spf13/cobra"
)

// defaultIdleClose is the default of serve --idle-close.
const defaultIdleClose = 60 * time.Second

// shutdownTimeout bounds how long serve waits for in-flight requests after
// SIGINT or SIGTERM before it flushes and closes the volumes anyway.
const shutdownTimeout = 30 * time.Second

// serveCmd returns "hlfs serve".
func (c *cli) serveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve [--listen ADDR] [--socket PATH] [--admin-socket PATH] [--idle-close DURATION] [--metrics-listen ADDR] [--tls-creds DIR [--tls on|require] [--tls-verify-peer] [--tls-authz FILE] [--tls-unix off]] [VOLUME|VOLUME@SNAPSHOT...]",
		Short: "serve volumes and snapshots over NBD",
		Long: `
Serve serves volumes over NBD until SIGINT or SIGTERM. The export name is
the volume name (nbd://127.0.0.1:10809/VOLUME). On a signal it stops
accepting connections, lets requests in flight finish, then flushes and
closes every volume and exits 0. A second signal kills it at once.

With no names, serve serves the whole store as it is now: a volume, clone
or snapshot is opened when a client first asks for it, so volumes created,
cloned, snapshotted or removed while serve runs come and go without a
restart, and start-up does not depend on how many volumes there are (an
empty store is fine). A volume no connection has used for --idle-close
(default 60s; 0 never) is flushed, checkpointed and closed: its memory and
its owner lock go back, and another host may serve it. A volume another
live process serves is refused with an NBD error naming that host. The
export list (NBD_OPT_LIST, nbdinfo --list) shows every volume of the store
and the snapshots of the volumes open at the time.

Named volumes ("hlfs serve vm1 vm2") are opened at start and stay open;
only they are exported. Snapshots are served read-only under the export
name VOLUME@SNAPSHOT. Name them like volumes ("hlfs serve vm1 vm1@s1"
serves both); serving a snapshot holds its volume, which is then exported
only if named too.

While serving, "hlfs snapshot create", "hlfs snapshot rm" and "hlfs gc" on
a served volume are carried out by serve, which they reach through its admin
socket: a Unix socket only this user may use, recorded in the owner lock of
each served volume. It is --admin-socket PATH, by default hlfs-PID.sock in
$XDG_RUNTIME_DIR or, when that is not set, in the temporary directory;
"none" serves without one.

Serve cleans every volume it serves in the background: every --gc-interval
it looks, and once --gc-trigger of the bytes of the segments it may clean is
garbage (and at least two segments' worth), it copies the live bytes of the
segments whose live share is at most --gc-max-utilization to the end of the
log, at --gc-rate bytes per second or as fast as clients write, whichever is
higher (without bound once garbage passed 1.2 times the trigger), and
deletes those segments. --no-gc turns that off; "hlfs gc" still cleans on
demand.

Serve takes at most --max-connections clients at once (handshake and
transmission); a client beyond that, or from an address that already has
--max-handshakes-per-address connections still negotiating, gets an NBD
error to its first option ("too many connections ...") and is closed, so
sockets that never finish the handshake cannot lock other addresses out.

With --tls-creds DIR, serve speaks NBD over TLS (NBD_OPT_STARTTLS, x509
certificates only: no PSK) with the credentials in DIR, laid out as QEMU's
tls-creds-x509 reads them: ca-cert.pem, server-cert.pem, server-key.pem and
optionally ca-crl.pem. --tls require (the default) refuses every option but
STARTTLS and ABORT before TLS; --tls on lets clients choose. Options
negotiated before STARTTLS are forgotten after it. --tls-verify-peer asks
clients for a certificate signed by ca-cert.pem; --tls-authz FILE then serves
only the distinguished names listed in FILE. --tls-unix off leaves the
--socket Unix socket in clear for local clients. SIGHUP reads the
credentials and FILE again; connections already set up go on.

--memory (default 1G) bounds the memory that volumes' newest log data and
requests in flight take together: when it is reached, the largest in-memory
segments are sealed early and written to the store, and writers wait for
them; request payloads take at most half of it.

With --scrub-interval (off by default; e.g. 7d, 12h) serve also verifies every
byte each served volume and its snapshots read, as "hlfs scrub" does, once per
interval at --scrub-rate bytes per second, and logs the damage it finds.

With --metrics-listen ADDR, serve exports Prometheus metrics on
http://ADDR/metrics (a bare PORT or :PORT listens on 127.0.0.1); README.md,
"Metrics", lists them. Under systemd (Type=notify, dist/systemd/hlfs.service)
serve sends READY=1 once it accepts connections and STOPPING=1 on SIGTERM.

A volume is owned by one process at a time. A volume another live serve owns
is served as a standby: reads show the owner's durable state, and the first
write asks the owner (at an NBD address its owner lock records) to hand the
volume over, or waits for its lease (live migration; README.md). Serve fails
before serving anything when a named volume or snapshot cannot be opened.`,
		Args: cobra.ArbitraryArgs,
	}
	fs := cmd.Flags()
	listen := fs.String("listen", "127.0.0.1:10809", "TCP `ADDR` to listen on; \"\" for none, port 0 for any free port")
	socket := fs.String("socket", "", "also listen on the Unix socket `PATH`")
	adminSocket := fs.String("admin-socket", "", "admin socket `PATH` (default $XDG_RUNTIME_DIR/hlfs-PID.sock); \"none\" for none")
	lease := fs.Duration("lease", lfs.DefaultLease, "owner lease `DURATION`: renewed every third of it; another host may take a volume over once a lease ran out")
	journalDir := fs.String("journal", "", "keep new log segments in the local write-back journal `DIR` and ship them to the store in the background (see README: durability)")
	noGC := fs.Bool("no-gc", false, "do not clean volumes in the background (\"hlfs gc\" still works through the admin socket)")
	gcRate := fs.String("gc-rate", "32M", "let the background cleaner copy `SIZE` bytes per second, or as fast as clients write if that is more (without bound once far behind); 0 for no bound")
	gcTrigger := fs.Float64("gc-trigger", 0.25, "start cleaning when this `FRACTION` of the cleanable segment bytes is garbage")
	gcInterval := fs.Duration("gc-interval", time.Second, "check for garbage every `DURATION`")
	gcMaxUtil := fs.Float64("gc-max-utilization", 0.8, "leave segments alone whose live share is above `FRACTION`")
	scrubInterval := fs.String("scrub-interval", "", "verify every byte of each served volume once every `DURATION` (e.g. 7d, 12h; default off)")
	scrubRate := fs.String("scrub-rate", "32M", "let the background scrub read `SIZE` bytes per second; 0 for no bound")
	maxConns := fs.Int("max-connections", nbdserver.DefaultMaxConns, "serve at most `N` clients at once; more get an NBD error (\"too many connections\")")
	maxPerAddr := fs.Int("max-handshakes-per-address", nbdserver.DefaultMaxHandshakesPerAddr, "let at most `N` connections from one IP address negotiate at once; more get an NBD error")
	memory := fs.String("memory", defaultMemory, "bound the log data all open volumes hold in memory and the request payloads in flight, together, to `SIZE` (at least 16M)")
	idleClose := fs.Duration("idle-close", defaultIdleClose, "without volume names: close a volume no connection used for `DURATION` (0: never)")
	tlsf := addTLSFlags(fs)
	metricsListen := fs.String("metrics-listen", "", "serve Prometheus metrics on http://`ADDR`/metrics; a bare PORT or :PORT means 127.0.0.1:PORT")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := tlsf.check(cmd.Flags().Changed); err != nil {
			return err
		}
		if *maxConns < 1 || *maxPerAddr < 1 {
			return usageError("serve", "--max-connections and --max-handshakes-per-address take a number of at least 1")
		}
		budget, err := memoryBudget(*memory, c.getenv)
		if err != nil {
			return err
		}
		c.memory = budget
		if !*noGC {
			if strings.TrimSpace(*gcRate) == "" {
				return usageError("serve", "--gc-rate: want a size, or 0 for no bound")
			}
			rate, err := rateFlag("serve", "gc-rate", *gcRate)
			if err != nil {
				return err
			}
			if rate == 0 {
				rate = -1 // no bound
			}
			if *gcTrigger <= 0 || *gcTrigger >= 1 || *gcMaxUtil <= 0 || *gcMaxUtil >= 1 {
				return usageError("serve", "--gc-trigger and --gc-max-utilization take a fraction between 0 and 1")
			}
			if *gcInterval < 10*time.Millisecond {
				return usageError("serve", "--gc-interval %s: want at least 10ms", *gcInterval)
			}
			c.cleaner = &lfs.CleanerOptions{Interval: *gcInterval, Trigger: *gcTrigger, Rate: rate, MaxUtilization: *gcMaxUtil}
		}
		if *listen == "" && *socket == "" {
			return usageError("serve", "nothing to listen on: --listen is empty and --socket not given")
		}
		if *lease < time.Second {
			return usageError("serve", "--lease %s: want at least 1s", *lease)
		}
		if strings.TrimSpace(*scrubInterval) != "" {
			d, err := cliutil.ParseDuration(*scrubInterval)
			if err != nil || d < time.Second {
				return usageError("serve", "--scrub-interval %q: want a duration of at least 1s, e.g. 7d or 12h", *scrubInterval)
			}
			r, err := rateFlag("serve", "scrub-rate", *scrubRate)
			if err != nil {
				return err
			}
			c.scrubInterval, c.scrubRate = d, r
		}
		if *idleClose < 0 {
			return usageError("serve", "--idle-close %s: want a duration, or 0 for never", *idleClose)
		}
		c.journalDir, c.lease = *journalDir, *lease
		return c.serve(serveNet{listen: *listen, socket: *socket, admin: *adminSocket,
			maxConns: *maxConns, maxPerAddr: *maxPerAddr, tls: tlsf, idleClose: *idleClose, metrics: *metricsListen}, args)
	}
	return cmd
}

// parseServeArgs checks the VOLUME and VOLUME@SNAPSHOT arguments of serve
// and returns the exports they name, in order.
func parseServeArgs(args []string) ([]string, error) {
	var named []string
	for _, arg := range args {
		snap, err := "", error(nil)
		if strings.Contains(arg, "@") {
			_, snap, err = lfs.ParseSnapshotRef(arg)
		} else {
			_, err = volumeArg(arg)
		}
		if err != nil {
			return nil, err
		}
		if slices.Contains(named, arg) {
			if snap != "" {
				return nil, fmt.Errorf("snapshot %s named twice", arg)
			}
			return nil, fmt.Errorf("volume %s named twice", arg)
		}
		named = append(named, arg)
	}
	return named, nil
}

// serveNet is how serve meets its clients: the listeners, the admin
// socket, the connection limits and TLS.
type serveNet struct {
	listen, socket, admin string
	maxConns, maxPerAddr  int
	tls                   *tlsFlags
	idleClose             time.Duration // serving the whole store: close unused volumes
	metrics               string        // --metrics-listen
}

func (c *cli) serve(sn serveNet, args []string) (err error) {
	named, err := parseServeArgs(args)
	if err != nil {
		return err
	}
	// Credentials first: a mistake there is found before any volume opens.
	st, err := sn.tls.load()
	if err != nil {
		return err
	}
	listen, socket, adminSocket := sn.listen, sn.socket, sn.admin
	store, err := c.openStore()
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(c.stderr, nil))
	if c.journalDir != "" {
		j, err := journal.New(c.journalDir, store, logger)
		if err != nil {
			return fmt.Errorf("cannot use journal %s: %w", c.journalDir, err)
		}
		defer func() {
			// After the volumes closed: ship everything left, then drop the markers.
			if jerr := j.Close(); jerr != nil {
				logger.Error("shipping the journal failed; its segments stay in "+c.journalDir+" until the next serve with it", "err", jerr)
				err = firstErr(err, fmt.Errorf("journal %s: %w", c.journalDir, jerr))
			}
		}()
		store = j
	}
	all := len(args) == 0
	startPprof(logger)
	mx, stopMetrics, err := listenMetrics(sn.metrics, logger)
	if err != nil {
		return err
	}
	defer stopMetrics()
	mx.SetMemory(c.memory) // hlfs_memory_budget_bytes, hlfs_memory_used_bytes

	// The volumes open on demand (all) or once the listeners are up; the
	// deferred closeAll flushes and closes those open at the end.
	sv := &serveVolumes{c: c, store: store, logger: logger, mx: mx, roams: newRoamRegistry(logger), tlsDir: sn.tls.creds, recovered: make(map[string]bool), warned: make(map[string]bool)}
	cat := newVolumeCatalog(c, logger, all, sn.idleClose, volumeLife{open: sv.open, close: sv.close}, sv.list)
	defer func() {
		if cerr := cat.closeAll(); cerr != nil {
			err = firstErr(err, cerr)
		} else if err == nil {
			logger.Info("stopped")
		}
	}()

	// The admin socket comes first: opening a volume records its path.
	adm, err := c.listenAdmin(adminSocket, cat, logger)
	if err != nil {
		return err
	}
	if adm != nil {
		sv.admin = adm.Path()
		defer func() {
			// Before the volumes close: requests in progress finish first.
			if cerr := adm.Close(); cerr != nil {
				logger.Warn("closing the admin socket failed", "err", cerr)
			}
		}()
	}

	// The listeners before any volume: owner locks record them (hlfs
	// attach), and clients wait in the backlog while named volumes open.
	var listeners []net.Listener
	closeListeners := func() {
		for _, l := range listeners {
			l.Close()
		}
	}
	defer closeListeners() // when a volume fails to open; after Shutdown a no-op
	if listen != "" {
		l, err := net.Listen("tcp", listen)
		if err != nil {
			return fmt.Errorf("cannot listen on %s: %w", listen, unwrapOpError(err))
		}
		listeners = append(listeners, l)
	}
	if socket != "" {
		l, err := listenUnix(socket)
		if err != nil {
			return err
		}
		listeners = append(listeners, l)
	}
	sv.nbd = listenURIs(listeners, st)
	if all { // hlfs attach of a volume not open finds this serve in the store index
		defer recordServer(store, sv.nbd, logger)()
	}
	// Every named volume and snapshot before serving any.
	for _, name := range named {
		if err := cat.openNamed(name); err != nil {
			return err
		}
	}
	if all && sn.idleClose > 0 {
		cat.reaped.Go(cat.reapIdle)
	}

	nopts := nbdserver.Options{Logger: logger, MaxConns: sn.maxConns, MaxHandshakesPerAddr: sn.maxPerAddr, Budget: c.memory}
	nopts.HandOff = sv.roams.ServeHandOff // issue 12: another host's serve asks for a volume
	if st != nil {
		nopts.TLS = st.opts
		stopHUP := st.watchSIGHUP(logger)
		defer stopHUP()
	}
	if mx != nil {
		nopts.Observe = mx.Observe
	}
	srv := nbdserver.New(cat, nopts)
	mx.SetConnections(srv.Connections)
	served := make(chan error, len(listeners))
	for _, l := range listeners {
		mode := nbdserver.TLSOff
		if st != nil {
			mode = st.tcp
			if l.Addr().Network() == "unix" {
				mode = st.unix
			}
		}
		go func() { served <- srv.ServeMode(l, mode) }()
	}
	var addrs []string
	for _, l := range listeners {
		a := l.Addr().String()
		if l.Addr().Network() == "unix" {
			a = "unix:" + a
		}
		if st != nil {
			a += " " + st.describe(l.Addr().Network())
		}
		addrs = append(addrs, a)
	}
	on := strings.Join(addrs, " and ")
	for _, name := range named {
		vol, _, _ := strings.Cut(name, "@")
		e, _ := cat.acquire(vol, false) // open for good
		kind := ""
		if vol != name {
			kind = ", read-only"
		}
		logger.Info(fmt.Sprintf("serving %s (%s%s) on %s", name, cliutil.FormatSize(e.vol.Size()), kind, on))
		cat.release(e)
	}
	if all {
		idle := "kept open"
		if sn.idleClose > 0 {
			idle = "closed after " + sn.idleClose.String() + " unused"
		}
		logger.Info(fmt.Sprintf("serving every volume (opened on demand, %s) on %s", idle, on), "store", c.store)
		logger.Info("snapshots are served read-only as VOLUME@SNAPSHOT")
	}
	if st != nil {
		logger.Info(st.summary())
	}
	if adm != nil {
		logger.Info("admin socket " + sv.admin)
	}

	notifySystemd(logger, "READY=1")
	pending := len(listeners)
	select {
	case <-c.ctx.Done():
		notifySystemd(logger, "STOPPING=1")
		logger.Info("shutting down: finishing requests in flight")
	case serr := <-served:
		pending--
		err = fmt.Errorf("serving stopped: %w", serr)
		logger.Error("serving stopped", "err", serr)
	}
	c.releaseSignals()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		logger.Warn("shutdown incomplete; closing volumes anyway", "err", serr)
	}
	// Serve returns once Shutdown closed its listener; wait for all of them.
wait:
	for ; pending > 0; pending-- {
		select {
		case <-served:
		case <-sctx.Done():
			closeListeners()
			break wait
		}
	}
	logger.Info("flushing and closing volumes")
	return err // the deferred functions close the admin socket, then flush and close the volumes
}

// serveVolumes opens and closes the volumes serve serves: openVolume and
// close are the only places serve opens and closes one (per-volume hooks,
// such as metrics, go there), and list lists the store. Safe for
// concurrent use (open and close never run at once for one volume).
type serveVolumes struct {
	c      *cli
	store  objstore.Store
	logger *slog.Logger
	admin  string           // the admin socket recorded in owner locks, "" for none
	nbd    []string         // the NBD URIs recorded in owner locks (hlfs attach)
	mx     *metrics.Metrics // per-volume metrics; nil without --metrics-listen
	roams  *roamRegistry    // the open volumes hand-off requests may name (serve_roam.go)
	tlsDir string           // --tls-creds, for hand-off requests to owners listening with TLS

	// mu guards recovered (volumes whose journal segments were queued) and
	// warned (entries of the store's root warned about).
	mu        sync.Mutex
	recovered map[string]bool
	warned    map[string]bool
}

// list returns the volumes of the store for the export list, with the
// snapshot names the store index records for them (none for a volume the
// index does not describe), warning once about each entry of the store's
// root that is not a volume. It reads the index, not every volume.
func (sv *serveVolumes) list() ([]string, map[string][]string, error) {
	l, err := lfs.ListIndexedStore(sv.store)
	sv.mu.Lock()
	defer sv.mu.Unlock()
	for _, ig := range l.Ignored {
		if !sv.warned[ig.Name] {
			sv.warned[ig.Name] = true
			sv.logger.Warn("ignoring "+ig.Name+" in the store: "+ignoredReason(ig), "store", sv.c.store)
		}
	}
	names := make([]string, 0, len(l.Volumes))
	snaps := make(map[string][]string)
	for _, v := range l.Volumes {
		names = append(names, v.Name)
		if v.Indexed {
			snaps[v.Name] = v.Snapshots
		}
	}
	return names, snaps, err
}

// open opens volume name for serving with the options every served volume
// gets: as its owner, or as a standby when another live process owns it
// (serve_roam.go).
func (sv *serveVolumes) open(name string) (*lfs.Roaming, error) {
	return sv.openVolume(name, lfs.Options{Logger: sv.logger, AdminSocket: sv.admin, NBD: sv.nbd, Lease: sv.c.lease, Budget: sv.c.memory})
}

// openVolume opens volume name with opts as an lfs.Roaming: its journal
// segments left by a crash are queued first (once per process); whenever
// it is the owner its background cleaner and scrubber run and its metrics
// are exported (onRole).
func (sv *serveVolumes) openVolume(name string, opts lfs.Options) (*lfs.Roaming, error) {
	if j, ok := sv.store.(*journal.Journal); ok {
		sv.mu.Lock()
		done := sv.recovered[name]
		sv.mu.Unlock()
		if !done {
			if err := j.Recover(name); err != nil {
				return nil, fmt.Errorf("journal: %w", err)
			}
			sv.mu.Lock()
			sv.recovered[name] = true
			sv.mu.Unlock()
		}
	}
	r, err := lfs.OpenRoaming(sv.store, name, opts, sv.roamOptions(name))
	if err != nil {
		return nil, err
	}
	if !sv.journaled() {
		sv.roams.add(r)
	}
	if r.Owner() {
		sv.logger.Debug("opened volume " + name)
	} else {
		sv.logger.Info("opened volume "+name+" as a standby: another process owns it; its first write here asks the owner to hand over", "volume", name)
	}
	return r, nil
}

// close flushes and closes v (which stops its cleaner and scrubber) and
// releases its owner lock, or closes a standby's view; it logs and returns
// the first failure.
func (sv *serveVolumes) close(v *lfs.Roaming) error {
	name := v.Name()
	sv.roams.remove(v)
	sv.mx.RemoveVolume(name)
	var err error
	if ferr := v.Flush(); ferr != nil {
		sv.logger.Error("flush failed", "volume", name, "err", ferr)
		err = fmt.Errorf("flushing %s: %w", name, ferr)
	}
	if cerr := v.Close(); cerr != nil {
		sv.logger.Error("close failed", "volume", name, "err", cerr)
		err = firstErr(err, fmt.Errorf("closing %s: %w", name, cerr))
	}
	return err
}

// listenAdmin starts the admin server of serve on the --admin-socket value:
// a path, "" for the default path or "none". It returns nil when there is
// none. A failure on the default path is only a warning: serve works without.
func (c *cli) listenAdmin(value string, h admin.Handler, logger *slog.Logger) (*admin.Server, error) {
	path := value
	switch value {
	case "none":
		return nil, nil
	case "":
		path = c.defaultAdminSocket()
	default:
		// The owner lock records it for commands run elsewhere.
		abs, err := filepath.Abs(value)
		if err != nil {
			return nil, err
		}
		path = abs
	}
	srv, err := admin.Listen(path, h)
	if err == nil {
		return srv, nil
	}
	msg := strings.TrimPrefix(err.Error(), "admin: ")
	if errors.Is(err, admin.ErrInUse) {
		msg = fmt.Sprintf("cannot listen on %s: another server is listening there", path)
	}
	if value == "" {
		logger.Warn("serving without an admin socket: snapshots of the served volumes cannot be taken or removed, nor the volumes cleaned on demand, meanwhile (see --admin-socket)", "err", msg)
		return nil, nil
	}
	return nil, fmt.Errorf("admin socket: %s", msg)
}

// defaultAdminSocket is the admin socket of serve without --admin-socket.
func (c *cli) defaultAdminSocket() string {
	name := fmt.Sprintf("hlfs-%d.sock", os.Getpid())
	if dir := c.getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, name)
	}
	return filepath.Join(os.TempDir(), name)
}

// firstErr returns the first non-nil of a and b.
func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// listenUnix listens on the Unix socket path, replacing a socket file left
// behind by a server that is gone. The socket file is removed on Close.
func listenUnix(path string) (net.Listener, error) {
	l, err := net.Listen("unix", path)
	if err != nil && errors.Is(err, syscall.EADDRINUSE) {
		if fi, serr := os.Lstat(path); serr == nil && fi.Mode()&os.ModeSocket != 0 {
			if conn, derr := net.DialTimeout("unix", path, time.Second); derr == nil {
				conn.Close()
				return nil, fmt.Errorf("cannot listen on %s: another server is listening there", path)
			}
			if rerr := os.Remove(path); rerr == nil {
				l, err = net.Listen("unix", path)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", path, unwrapOpError(err))
	}
	return l, nil
}

// unwrapOpError drops the "listen tcp 1.2.3.4:5: " part of a *net.OpError,
// which the caller's message already says.
func unwrapOpError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		var sys *os.SyscallError
		if errors.As(op.Err, &sys) {
			return sys.Err
		}
		return op.Err
	}
	return err
}
