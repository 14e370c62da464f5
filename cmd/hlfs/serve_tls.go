package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/hlfs/hlfs/nbdserver"
	"github.com/spf13/pflag"
)

// tlsFlags are the TLS flags of serve.
type tlsFlags struct {
	creds      string // --tls-creds DIR
	mode       string // --tls on|require
	verifyPeer bool   // --tls-verify-peer
	authz      string // --tls-authz FILE
	unix       string // --tls-unix off|on|require ("" = as --tls)
}

// addTLSFlags defines the TLS flags of serve on fs.
func addTLSFlags(fs *pflag.FlagSet) *tlsFlags {
	f := &tlsFlags{}
	fs.StringVar(&f.creds, "tls-creds", "", "serve NBD over TLS with the x509 credentials in `DIR` (QEMU's layout: ca-cert.pem, server-cert.pem, server-key.pem, optional ca-crl.pem)")
	fs.StringVar(&f.mode, "tls", "require", "with --tls-creds: `MODE` \"require\" refuses clients that do not start TLS, \"on\" lets each client choose")
	fs.BoolVar(&f.verifyPeer, "tls-verify-peer", false, "with --tls-creds: clients must present a certificate signed by ca-cert.pem (and not revoked by ca-crl.pem)")
	fs.StringVar(&f.authz, "tls-authz", "", "with --tls-verify-peer: only clients whose certificate's distinguished name is listed in `FILE` (one a line) are served")
	fs.StringVar(&f.unix, "tls-unix", "", "TLS `MODE` of the --socket Unix socket: off, on or require (default: as --tls; \"off\" serves local clients in clear)")
	return f
}

// serveTLS is the TLS setup of serve: the server's TLS options, and the
// modes of its TCP listener and Unix socket.
type serveTLS struct {
	opts       *nbdserver.TLSOptions // nil: no TLS
	tcp, unix  nbdserver.TLSMode
	creds      *nbdserver.X509Dir
	verifyPeer bool
	authzPath  string
	authz      atomic.Pointer[nbdserver.DNList] // nil: every verified client
}

// parseTLSMode reads a --tls or --tls-unix value.
func parseTLSMode(flag, v string) (nbdserver.TLSMode, error) {
	switch v {
	case "require":
		return nbdserver.TLSRequire, nil
	case "on":
		return nbdserver.TLSOn, nil
	case "off":
		if flag == "tls-unix" {
			return nbdserver.TLSOff, nil
		}
	}
	want := "on or require"
	if flag == "tls-unix" {
		want = "off, on or require"
	}
	return 0, usageError("serve", "--%s %q: want %s", flag, v, want)
}

// check validates the TLS flags; changed reports whether a flag was given.
func (f *tlsFlags) check(changed func(string) bool) error {
	if f.creds == "" {
		for _, name := range []string{"tls", "tls-verify-peer", "tls-authz", "tls-unix"} {
			if changed(name) {
				return usageError("serve", "--%s needs --tls-creds DIR", name)
			}
		}
		return nil
	}
	if _, err := parseTLSMode("tls", f.mode); err != nil {
		return err
	}
	if f.unix != "" {
		if _, err := parseTLSMode("tls-unix", f.unix); err != nil {
			return err
		}
	}
	if f.authz != "" && !f.verifyPeer {
		return usageError("serve", "--tls-authz needs --tls-verify-peer: without it clients present no certificate to check")
	}
	return nil
}

// load reads the credentials and the authz list named by the flags
// (checked before); it returns nil without --tls-creds.
func (f *tlsFlags) load() (*serveTLS, error) {
	if f.creds == "" {
		return nil, nil
	}
	st := &serveTLS{authzPath: f.authz, verifyPeer: f.verifyPeer}
	st.tcp, _ = parseTLSMode("tls", f.mode)
	st.unix = st.tcp
	if f.unix != "" {
		st.unix, _ = parseTLSMode("tls-unix", f.unix)
	}
	creds, err := nbdserver.LoadX509Dir(f.creds, f.verifyPeer)
	if err != nil {
		return nil, fmt.Errorf("TLS credentials: %w", err)
	}
	st.creds = creds
	st.opts = &nbdserver.TLSOptions{Config: creds.Config(), Mode: st.tcp}
	if f.authz != "" {
		l, err := nbdserver.LoadDNList(f.authz)
		if err != nil {
			return nil, fmt.Errorf("--tls-authz: %w", err)
		}
		st.authz.Store(l)
		st.opts.Authorize = st.authorize
	}
	return st, nil
}

// authorize checks a client against the authz list in use.
func (st *serveTLS) authorize(cs *tls.ConnectionState) error {
	return st.authz.Load().Authorize(cs)
}

// reload reads the credentials and the authz list again; on error the
// ones in use stay.
func (st *serveTLS) reload() error {
	if err := st.creds.Reload(); err != nil {
		return fmt.Errorf("TLS credentials: %w", err)
	}
	if st.authzPath != "" {
		l, err := nbdserver.LoadDNList(st.authzPath)
		if err != nil {
			return fmt.Errorf("--tls-authz: %w", err)
		}
		st.authz.Store(l)
	}
	return nil
}

// describe says how a listener of the given network serves TLS, for the
// log.
func (st *serveTLS) describe(network string) string {
	mode := st.tcp
	if network == "unix" {
		mode = st.unix
	}
	switch mode {
	case nbdserver.TLSOff:
		return "in clear"
	case nbdserver.TLSOn:
		return "with TLS at the client's choice"
	}
	return "with TLS required"
}

// summary is the log line about the TLS setup.
func (st *serveTLS) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "TLS credentials %s", st.creds.Dir())
	switch l := st.authz.Load(); {
	case l != nil:
		fmt.Fprintf(&b, "; client certificates verified, %d distinguished names allowed (%s)", l.Len(), st.authzPath)
	case st.verifyPeer:
		b.WriteString("; client certificates verified")
	default:
		b.WriteString("; client certificates not asked for")
	}
	if st.creds.MaxVersion() == tls.VersionTLS12 {
		b.WriteString("; TLS 1.2 at most: the CA has an RSA key, and GnuTLS 3.7 clients (QEMU, libnbd) send no RSA client certificate in TLS 1.3 to this server")
	}
	b.WriteString("; SIGHUP reloads them")
	return b.String()
}

// watchSIGHUP reloads the TLS credentials on every SIGHUP until the
// returned stop is called. Connections already set up are left alone.
func (st *serveTLS) watchSIGHUP(logger *slog.Logger) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				if err := st.reload(); err != nil {
					logger.Error("SIGHUP: reloading failed, the TLS credentials in use stay", "err", err)
				} else {
					logger.Info("SIGHUP: TLS credentials reloaded from " + st.creds.Dir())
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
