package nbdserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"sync"
	"time"
)

const (
	readBufferSize  = 64 << 10
	writeBufferSize = 64 << 10
)

// conn is one client connection: a reading goroutine (serve) that performs
// the handshake, then reads requests and hands each to a worker goroutine;
// workers reply through w.
type conn struct {
	srv  *Server
	nc   net.Conn // the socket: deadlines and Close go here, TLS or not
	log  *slog.Logger
	mode TLSMode // this listener's TLS mode (TLSOff without Options.TLS)
	// addr is the remote IP address counted against
	// Options.MaxHandshakesPerAddr ("" when not counted); the count is
	// under Server.mu.
	addr string

	// Set by the reading goroutine during the handshake, before any
	// worker starts, and only read afterwards.
	src     net.Conn  // what the connection reads and writes: nc, or tc after STARTTLS
	tc      *tls.Conn // the TLS session, nil before STARTTLS
	authErr error     // Options.TLS.Authorize refused the client

	rd connReader    // counts bytes under br
	br *bufio.Reader // reading goroutine only
	bw *bufio.Writer // handshake (reading goroutine), then only via w
	w  replyWriter

	lim      limiter        // bounds the work in flight
	inflight sync.WaitGroup // workers running
	// ctx ends the reading goroutine's wait for Options.Budget when the
	// connection is closed.
	ctx    context.Context
	cancel context.CancelFunc

	closeOnce sync.Once
}

// newConn wraps an accepted connection.
func newConn(s *Server, nc net.Conn, mode TLSMode, addr string) *conn {
	c := &conn{srv: s, nc: nc, src: nc, mode: mode, addr: addr, log: s.log.With("remote", remoteAddr(nc))}
	c.rd = connReader{c: c, start: math.MaxInt64}
	c.br = bufio.NewReaderSize(&c.rd, readBufferSize)
	c.bw = bufio.NewWriterSize(nc, writeBufferSize)
	c.w.mu.bw = c.bw
	c.w.onError = func(error) { c.close() }
	c.lim.init(s.opts.MaxRequestsPerConn, s.opts.MaxInFlightBytes)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// serve runs the connection to its end: handshake, transmission, then,
// once every worker has replied, close.
func (c *conn) serve() {
	sess, err := c.handshake()
	c.srv.negotiated(c)
	if err != nil {
		if errors.Is(err, errAbort) {
			c.closeTLS()
		}
		c.close()
		c.logEnd("handshake", err)
		return
	}
	c.log.Debug("nbd: transmission started", "export", sess.name,
		"structured", sess.structured, "meta_contexts", len(sess.meta))
	err = c.transmit(sess)
	if !c.graceful(err) {
		// Broken or hostile client: drop it now, replies still pending
		// are lost (their writes fail fast).
		c.close()
	}
	c.inflight.Wait()
	c.srv.release(sess.name, true)
	if c.graceful(err) {
		c.closeTLS()
	}
	c.close()
	c.logEnd("transmission", err)
}

// graceful reports whether the transmission ended in a way that lets the
// requests already received finish and send their replies first.
func (c *conn) graceful(err error) bool {
	switch {
	case errors.Is(err, errDisconnect), errors.Is(err, errShuttingDown), errors.Is(err, io.EOF):
		return true
	case errors.Is(err, os.ErrDeadlineExceeded):
		return c.srv.closing.Load()
	}
	return false
}

// logEnd logs why the connection ended, quietly for orderly ends.
func (c *conn) logEnd(phase string, err error) {
	switch {
	case errors.Is(err, errDisconnect), errors.Is(err, errAbort), errors.Is(err, io.EOF):
		c.log.Debug("nbd: connection closed by client", "phase", phase)
	case c.srv.closing.Load():
		c.log.Debug("nbd: connection closed by shutdown", "phase", phase, "err", err)
	default:
		c.log.Warn("nbd: connection dropped", "phase", phase, "err", err)
	}
}

// interrupt makes the reading goroutine stop at the next request boundary
// (Shutdown sets closing first). A request partly received is finished; see
// connReader.
func (c *conn) interrupt() {
	c.nc.SetReadDeadline(time.Now())
}

// close closes the socket once; blocked reads and writes fail.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.cancel()
		c.nc.Close()
	})
}

// closeTLS ends the TLS session, if any, with a close_notify alert, as the
// spec asks of the party that disconnects. Only once nothing else writes.
func (c *conn) closeTLS() {
	if c.tc == nil {
		return
	}
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.tc.CloseWrite()
}

// connReader reads from the connection (the socket or its TLS session) for
// br, counting bytes so that it knows whether a request has started to
// arrive. When Shutdown interrupts a read while a request is partly
// received, it lifts the deadline and goes on, so that a client is never
// cut off in the middle of a request it has sent.
type connReader struct {
	c *conn
	// n counts bytes read from the socket; start is the stream position of
	// the request being read (MaxInt64 while negotiating or between
	// requests). Both are used by the reading goroutine only.
	n, start int64
}

// Read implements io.Reader.
func (r *connReader) Read(p []byte) (int, error) {
	for {
		n, err := r.c.src.Read(p)
		r.n += int64(n)
		if n == 0 && err != nil && r.n > r.start && r.c.srv.closing.Load() &&
			errors.Is(err, os.ErrDeadlineExceeded) {
			r.c.nc.SetReadDeadline(time.Time{})
			continue
		}
		return n, err
	}
}

// remoteAddr names the peer for logs.
func remoteAddr(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil && a.String() != "" {
		return a.Network() + ":" + a.String()
	}
	return "unknown"
}
