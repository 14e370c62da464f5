package nbdserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves the exports of a Catalog over NBD. Create it with New, call
// Serve once per listener (TCP or Unix, several at once are fine) and
// Shutdown to stop. All methods are safe for concurrent use.
type Server struct {
	cat  Catalog
	opts Options
	log  *slog.Logger
	// tlsConfig is Options.TLS.Config as used (see serverTLSConfig).
	tlsConfig *tls.Config

	// closing is set once by Shutdown; connections poll it between requests.
	closing atomic.Bool
	// handlers counts connection goroutines; Add only under mu while
	// !closing, so Shutdown's Wait cannot race with it.
	handlers sync.WaitGroup

	// mu guards the listeners and the connections being served, waiting
	// or refused; no I/O under it except closing sockets and setting
	// deadlines.
	mu struct {
		sync.Mutex
		listeners map[*net.Listener]struct{}
		conns     map[*conn]struct{}
		// refusing holds the connections being refused (see refuse), with
		// their addresses.
		refusing map[net.Conn]string
		// waiting holds, per remote IP address, the connections waiting
		// for one of its negotiating connections to finish (see register).
		waiting  map[string][]*waiter
		nwaiting int
		// perAddr counts, per remote IP address, the connections still
		// negotiating and those being refused.
		// Invariant: perAddr[a].negotiating is the number of conns with
		// addr a whose handshake has not ended, perAddr[a].refusing the
		// number of refusing entries with a; zero entries are deleted.
		perAddr map[string]addrCount
	}
}

// New returns a Server for the exports of cat. Unset options take their
// defaults (see Options). It panics when Options.TLS has no Config.
func New(cat Catalog, opts Options) *Server {
	s := &Server{cat: cat, opts: opts.withDefaults()}
	s.log = s.opts.Logger
	if t := s.opts.TLS; t != nil {
		if t.Config == nil {
			panic("nbdserver: Options.TLS without a Config")
		}
		s.tlsConfig = serverTLSConfig(t.Config)
	}
	s.mu.listeners = make(map[*net.Listener]struct{})
	s.mu.conns = make(map[*conn]struct{})
	s.mu.refusing = make(map[net.Conn]string)
	s.mu.waiting = make(map[string][]*waiter)
	s.mu.perAddr = make(map[string]addrCount)
	return s
}

// Serve accepts connections on l and serves each in its own goroutines until
// Shutdown, then returns ErrServerClosed. It returns other accept errors
// that are not temporary. Serve closes l when it returns. Connections use
// TLS as Options.TLS.Mode says (without Options.TLS, not at all).
func (s *Server) Serve(l net.Listener) error {
	mode := TLSOff
	if s.opts.TLS != nil {
		mode = s.opts.TLS.Mode
	}
	return s.ServeMode(l, mode)
}

// ServeMode is Serve with the TLS mode of l's connections given: e.g.
// TLSOff for a Unix socket left in clear while TCP requires TLS. A mode
// other than TLSOff needs Options.TLS.
func (s *Server) ServeMode(l net.Listener, mode TLSMode) error {
	defer l.Close()
	if mode != TLSOff && s.opts.TLS == nil {
		return fmt.Errorf("nbdserver: TLS mode %s without Options.TLS", mode)
	}
	if !s.trackListener(&l, true) {
		return ErrServerClosed
	}
	defer s.trackListener(&l, false)

	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("nbd: accept failed, retrying", "err", err, "delay", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.startConn(nc, mode)
	}
}

// Shutdown stops the server: it closes the listeners, stops every connection
// from reading further requests, waits until the requests already received
// are served and their replies sent, and closes the connections. Requests
// whose header or payload is still arriving are read and served too.
//
// If ctx ends first, Shutdown closes all connections at once (replies still
// pending are lost), then still waits for calls into exports to return, and
// returns ctx.Err(). Either way no Export method is running when Shutdown
// returns, so the caller may flush and close the exports.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for l := range s.mu.listeners {
		(*l).Close()
	}
	for c := range s.mu.conns {
		c.interrupt()
	}
	for nc := range s.mu.refusing {
		nc.Close()
	}
	s.dropWaitingLocked()
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.mu.conns {
		c.close()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}

// trackListener adds or removes l; adding fails once shutting down.
func (s *Server) trackListener(l *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.mu.listeners, l)
		return true
	}
	if s.closing.Load() {
		return false
	}
	s.mu.listeners[l] = struct{}{}
	return true
}

// startConn serves nc in a new goroutine, or refuses it.
func (s *Server) startConn(nc net.Conn, mode TLSMode) {
	if c := s.register(nc, mode); c != nil {
		go s.run(c)
	}
}

// serveConn serves one accepted connection and returns when it is closed
// (used by tests and the fuzzer). It reports false if the server refused it.
func (s *Server) serveConn(nc net.Conn, mode TLSMode) bool {
	c := s.register(nc, mode)
	if c == nil {
		return false
	}
	s.run(c)
	return true
}

// run serves a registered connection to its end.
func (s *Server) run(c *conn) {
	defer s.handlers.Done()
	defer s.dropConn(c)
	c.serve()
}

// dropConn forgets a finished connection.
func (s *Server) dropConn(c *conn) {
	s.mu.Lock()
	delete(s.mu.conns, c)
	s.mu.Unlock()
}
