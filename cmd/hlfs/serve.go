package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/lfs"
	"github.com/hlfs/hlfs/nbdserver"
)

// shutdownTimeout bounds how long serve waits for in-flight requests after
// SIGINT or SIGTERM before it flushes and closes the volumes anyway.
const shutdownTimeout = 30 * time.Second

var serveCmd = &command{
	name:    "serve",
	args:    "[--listen ADDR] [--socket PATH] [VOLUME...]",
	summary: "serve volumes over NBD",
	help: `
Serve opens the named volumes, or every volume in the store when none is
named, and serves them over NBD until SIGINT or SIGTERM. The export name is
the volume name (nbd://127.0.0.1:10809/VOLUME). On a signal it stops
accepting connections, lets requests in flight finish, then flushes and
closes every volume and exits 0. A second signal kills it at once.

A volume can be served by one process at a time; serve fails before serving
anything when a volume cannot be opened.`,
	flags: func(fs *flag.FlagSet) func(*cli, []string) error {
		listen := fs.String("listen", "127.0.0.1:10809", "TCP `ADDR` to listen on; \"\" for none, port 0 for any free port")
		socket := fs.String("socket", "", "also listen on the Unix socket `PATH`")
		return func(c *cli, args []string) error {
			if *listen == "" && *socket == "" {
				return usageError("serve", "nothing to listen on: --listen is empty and --socket not given")
			}
			return c.serve(*listen, *socket, args)
		}
	},
}

// servedVolume is an open volume and its export.
type servedVolume struct {
	vol  *lfs.Volume
	info nbdserver.ExportInfo
}

// volumeCatalog is the nbdserver.Catalog of the served volumes. It does not
// change while serving.
type volumeCatalog struct {
	names []string
	vols  map[string]servedVolume
}

var _ nbdserver.Catalog = (*volumeCatalog)(nil)

// Names implements nbdserver.Catalog.
func (c *volumeCatalog) Names() []string { return slices.Clone(c.names) }

// Lookup implements nbdserver.Catalog.
func (c *volumeCatalog) Lookup(name string) (nbdserver.Export, nbdserver.ExportInfo, error) {
	sv, ok := c.vols[name]
	if !ok {
		return nil, nbdserver.ExportInfo{}, fmt.Errorf("%w: %q", nbdserver.ErrUnknownExport, name)
	}
	return sv.vol, sv.info, nil
}

func (c *cli) serve(listen, socket string, args []string) (err error) {
	var names []string
	for _, arg := range args {
		name, err := volumeArg(arg)
		if err != nil {
			return err
		}
		if slices.Contains(names, name) {
			return fmt.Errorf("volume %s named twice", name)
		}
		names = append(names, name)
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	if len(names) == 0 {
		if names, err = lfs.List(st); err != nil {
			return fmt.Errorf("cannot list store %s: %w", c.store, err)
		}
		if len(names) == 0 {
			return fmt.Errorf("no volumes to serve in store %s (make one with 'hlfs create')", c.store)
		}
	}
	logger := slog.New(slog.NewTextHandler(c.stderr, nil))
	startPprof(logger)

	// Open every volume before serving any.
	cat := &volumeCatalog{names: names, vols: make(map[string]servedVolume)}
	defer func() {
		for _, name := range names {
			sv, ok := cat.vols[name]
			if !ok {
				continue
			}
			if ferr := sv.vol.Flush(); ferr != nil {
				logger.Error("flush failed", "volume", name, "err", ferr)
				err = firstErr(err, fmt.Errorf("flushing %s: %w", name, ferr))
			}
			if cerr := sv.vol.Close(); cerr != nil {
				logger.Error("close failed", "volume", name, "err", cerr)
				err = firstErr(err, fmt.Errorf("closing %s: %w", name, cerr))
			}
		}
		if err == nil && len(cat.vols) > 0 {
			logger.Info("stopped")
		}
	}()
	for _, name := range names {
		v, err := lfs.Open(st, name, lfs.Options{Logger: logger})
		if err != nil {
			return fmt.Errorf("cannot serve %s: %s", name, cliutil.Message(c.volumeError(name, err)))
		}
		cat.vols[name] = servedVolume{vol: v, info: nbdserver.ExportInfo{
			PreferredBlockSize: uint32(v.BlockSize()),
			Description:        "hlfs volume " + name,
		}}
	}

	var listeners []net.Listener
	closeListeners := func() {
		for _, l := range listeners {
			l.Close()
		}
	}
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
			closeListeners()
			return err
		}
		listeners = append(listeners, l)
	}

	srv := nbdserver.New(cat, nbdserver.Options{Logger: logger})
	served := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { served <- srv.Serve(l) }()
	}
	var addrs []string
	for _, l := range listeners {
		if l.Addr().Network() == "unix" {
			addrs = append(addrs, "unix:"+l.Addr().String())
		} else {
			addrs = append(addrs, l.Addr().String())
		}
	}
	for _, name := range names {
		v := cat.vols[name].vol
		logger.Info(fmt.Sprintf("serving %s (%s) on %s", name, cliutil.FormatSize(v.Size()), strings.Join(addrs, " and ")))
	}

	pending := len(listeners)
	select {
	case <-c.ctx.Done():
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
	return err // the deferred function flushes and closes the volumes
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
