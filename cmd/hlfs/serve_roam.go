package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hlfs/hlfs/internal/journal"
	"github.com/hlfs/hlfs/lfs"
	"github.com/hlfs/hlfs/nbdserver"
)

// Roaming in serve (issue 12; docs/design.md "Roaming: standby exports and
// hand-off"): a volume another live process owns is opened as a standby
// lfs.Roaming; its first write asks the owner over the owner's NBD listener
// (askHandOff), and the owner's serve routes the request to its Roaming of
// that volume (roamRegistry.ServeHandOff).

// askTimeout bounds one hand-off request (all of the owner's addresses):
// a request that gets no answer must not keep TakeOver from seeing that
// the owner's lease ran out.
const askTimeout = 3 * time.Second

// roamRegistry maps volume names to the Roamings this serve has open; it
// answers hand-off requests (nbdserver.Options.HandOff).
type roamRegistry struct {
	mu    sync.Mutex
	vols  map[string]*lfs.Roaming
	log   *slog.Logger
	clock func() time.Time
}

func newRoamRegistry(logger *slog.Logger) *roamRegistry {
	return &roamRegistry{vols: make(map[string]*lfs.Roaming), log: logger, clock: time.Now}
}

func (reg *roamRegistry) add(r *lfs.Roaming) {
	reg.mu.Lock()
	reg.vols[r.Name()] = r
	reg.mu.Unlock()
}

func (reg *roamRegistry) remove(r *lfs.Roaming) {
	reg.mu.Lock()
	if reg.vols[r.Name()] == r {
		delete(reg.vols, r.Name())
	}
	reg.mu.Unlock()
}

// ServeHandOff is nbdserver.Options.HandOff: it finds the Roaming the
// request names and lets it check the request and hand off.
func (reg *roamRegistry) ServeHandOff(b []byte) error {
	req, err := lfs.DecodeHandOffRequest(b)
	if err != nil {
		return err
	}
	reg.mu.Lock()
	r := reg.vols[req.Volume]
	reg.mu.Unlock()
	if r == nil {
		return fmt.Errorf("%w: %s is not open here", lfs.ErrHandOffRefused, req.Volume)
	}
	t0 := reg.clock()
	reg.log.Info("hand-off requested", "volume", req.Volume, "epoch", req.Epoch)
	if err := r.ServeHandOff(b); err != nil {
		reg.log.Warn("hand-off refused or failed", "volume", req.Volume, "epoch", req.Epoch, "err", err)
		return err
	}
	reg.log.Info("handed off", "volume", req.Volume, "epoch", req.Epoch, "took", reg.clock().Sub(t0).Round(time.Microsecond))
	return nil
}

// handOffTarget is one address a hand-off request can be sent to.
type handOffTarget struct {
	network, address string
	tls              bool
	serverName       string
}

// handOffTargets lists where the owner (its lock record) takes hand-off
// requests, as seen from the host named here, best first: its TCP
// listeners (a wildcard address stands for the owner's host), then, on the
// owner's host, its Unix sockets, and last its loopback listeners when it
// is on another host by name (two serves on one machine acting as two
// hosts; on a real other host that connection fails, or reaches a server
// that refuses a request it cannot verify).
func handOffTargets(owner lfs.OwnerRecord, here string) []handOffTarget {
	local := owner.Host == here
	var first, last []handOffTarget
	for _, u := range owner.NBD {
		ep, err := parseServedURI(u)
		if err != nil {
			continue
		}
		if ep.unix() {
			if local {
				first = append(first, handOffTarget{network: "unix", address: ep.socket, tls: ep.tls, serverName: "localhost"})
			}
			continue
		}
		host := ep.host
		ip := net.ParseIP(host)
		switch {
		case ip != nil && ip.IsUnspecified() && local:
			host = "localhost"
		case ip != nil && ip.IsUnspecified():
			host = owner.Host
		}
		t := handOffTarget{network: "tcp", address: net.JoinHostPort(host, ep.port), tls: ep.tls, serverName: host}
		if ip != nil && ip.IsLoopback() && !local {
			last = append(last, t)
			continue
		}
		first = append(first, t)
	}
	return append(first, last...)
}

// askHandOff returns the RoamOptions.Ask of volume vol for a serve on the
// host named here: it sends lfs.NewHandOffRequest to the owner's
// addresses in turn until one answers (nbdserver.RequestHandOff). tlsDir,
// when not empty, is serve's --tls-creds directory, whose CA certificate
// verifies the owner's (and whose client-cert.pem, else server-cert.pem, is
// this serve's client certificate, for owners that verify peers).
func askHandOff(vol, here, tlsDir string) func(ctx context.Context, owner lfs.OwnerRecord) error {
	return func(ctx context.Context, owner lfs.OwnerRecord) error {
		targets := handOffTargets(owner, here)
		if len(targets) == 0 {
			return fmt.Errorf("the owner (pid %d on %s) records no NBD address this host can reach (%s)",
				owner.PID, owner.Host, strings.Join(owner.NBD, ", "))
		}
		ctx, cancel := context.WithTimeout(ctx, askTimeout)
		defer cancel()
		req := lfs.NewHandOffRequest(vol, owner).Encode()
		var errs []error
		for _, t := range targets {
			var cfg *tls.Config
			if t.tls {
				var err error
				if cfg, err = handOffClientTLS(tlsDir, t.serverName); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			err := nbdserver.RequestHandOff(ctx, t.network, t.address, req, cfg)
			if err == nil {
				return nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		return errors.Join(errs...)
	}
}

// handOffClientTLS is the client side of a hand-off request to a TLS
// listener, from serve's credential directory dir.
func handOffClientTLS(dir, serverName string) (*tls.Config, error) {
	if dir == "" {
		return nil, errors.New("the owner listens with TLS and this serve has no --tls-creds to verify it")
	}
	pem, err := os.ReadFile(filepath.Join(dir, nbdserver.CACertFile))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", filepath.Join(dir, nbdserver.CACertFile))
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: serverName}
	// A client certificate, for owners that verify peers: QEMU's client
	// files when the directory has them, else the server's own (usable
	// when it allows client authentication).
	for _, f := range [][2]string{{"client-cert.pem", "client-key.pem"}, {nbdserver.ServerCertFile, nbdserver.ServerKeyFile}} {
		if pair, err := tls.LoadX509KeyPair(filepath.Join(dir, f[0]), filepath.Join(dir, f[1])); err == nil {
			cfg.Certificates = []tls.Certificate{pair}
			break
		}
	}
	return cfg, nil
}

// roamOptions are the lfs.RoamOptions of volume name: hand-off requests
// through askHandOff, and onRole. With a write-back journal the volume does
// not roam: what its owner made durable is in the local journal, not yet
// in the store another host reads, so a hand-off would lose it. Such a
// serve neither asks nor answers (a standby there refuses writes, and an
// owner refuses requests: the asker waits for the lease).
func (sv *serveVolumes) roamOptions(name string) lfs.RoamOptions {
	ro := lfs.RoamOptions{OnRole: func(v *lfs.Volume, owner bool) { sv.onRole(name, v, owner) }}
	if !sv.journaled() {
		ro.Ask = askHandOff(name, sv.c.hostname(), sv.tlsDir)
	}
	return ro
}

// journaled reports whether serve writes through a local journal.
func (sv *serveVolumes) journaled() bool {
	_, ok := sv.store.(*journal.Journal)
	return ok
}

// onRole follows a volume's role (lfs.RoamOptions.OnRole): an owner Volume
// gets the background cleaner and scrubber and exports the volume's
// metrics; a standby's view does neither (the owner Volume it replaces
// stopped its loops when it closed).
func (sv *serveVolumes) onRole(name string, v *lfs.Volume, owner bool) {
	if !owner {
		sv.mx.RemoveVolume(name)
		sv.logger.Debug("serving "+name+" as a standby", "volume", name)
		return
	}
	if c := sv.c.cleaner; c != nil {
		v.StartCleaner(*c)
	}
	if sv.c.scrubInterval > 0 {
		v.StartScrubber(sv.c.scrubInterval, sv.c.scrubRate)
	}
	sv.mx.AddVolume(name, v)
	sv.logger.Debug("serving "+name+" as its owner", "volume", name)
}
