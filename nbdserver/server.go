package nbdserver

import (
	"context"
	"errors"
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

	// closing is set once by Shutdown; connections poll it between requests.
	closing atomic.Bool
	// handlers counts connection goroutines; Add only under mu while
	// !closing, so Shutdown's Wait cannot race with it.
	handlers sync.WaitGroup

	// mu guards the listeners and connections being served; no I/O under it
	// except closing sockets and setting deadlines.
	mu struct {
		sync.Mutex
		listeners map[*net.Listener]struct{}
		conns     map[*conn]struct{}
	}
}

// New returns a Server for the exports of cat. Unset options take their
// defaults (see Options).
func New(cat Catalog, opts Options) *Server {
	s := &Server{cat: cat, opts: opts.withDefaults()}
	s.log = s.opts.Logger
	s.mu.listeners = make(map[*net.Listener]struct{})
	s.mu.conns = make(map[*conn]struct{})
	return s
}

// Serve accepts connections on l and serves each in its own goroutines until
// Shutdown, then returns ErrServerClosed. It returns other accept errors
// that are not temporary. Serve closes l when it returns.
func (s *Server) Serve(l net.Listener) error {
	defer l.Close()
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
		s.startConn(nc)
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

// startConn serves nc in a new goroutine unless the server refuses it.
func (s *Server) startConn(nc net.Conn) {
	if c := s.register(nc); c != nil {
		go s.run(c)
	}
}

// serveConn serves one accepted connection and returns when it is closed
// (used by tests and the fuzzer). It reports false if the server refused it.
func (s *Server) serveConn(nc net.Conn) bool {
	c := s.register(nc)
	if c == nil {
		return false
	}
	s.run(c)
	return true
}

// register adds a connection for nc, or closes nc and returns nil when the
// server is shutting down or already serves MaxConns connections.
func (s *Server) register(nc net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		nc.Close()
		return nil
	}
	if len(s.mu.conns) >= s.opts.MaxConns {
		s.log.Warn("nbd: too many connections, refusing", "remote", remoteAddr(nc), "max", s.opts.MaxConns)
		nc.Close()
		return nil
	}
	c := newConn(s, nc)
	s.mu.conns[c] = struct{}{}
	s.handlers.Add(1)
	return c
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
