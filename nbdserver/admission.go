package nbdserver

import (
	"fmt"
	"net"
	"time"
)

// Admission: which accepted connections are served, which wait, which are
// refused. All of it runs under Server.mu and does no I/O but closing
// sockets; refusing and serving happen in goroutines of their own.
//
//   - A server serves at most MaxConns connections (negotiating or in
//     transmission). One more is refused: see refuse.
//   - At most MaxHandshakesPerAddr connections from one remote IP address
//     negotiate at once. One more waits, unread and not greeted, until one
//     of them finishes its handshake (a burst of clients on one host is
//     served in turn), for at most the handshake timeout; then it is
//     refused. At most maxWaitingPerAddr wait per address (MaxConns) and
//     maxWaitingFactor*MaxConns in all; beyond that a connection is refused
//     at once. So sockets from one address that never finish the handshake
//     hold MaxHandshakesPerAddr slots and some file descriptors, never the
//     slots of other addresses.
//   - Refusals run at most maxRefusing at once (maxRefusingPerAddr per
//     address); beyond that a connection is closed without a word.

// maxWaitingFactor times MaxConns bounds the connections waiting in all.
const maxWaitingFactor = 4

// addrCount is what one remote address holds (under Server.mu).
type addrCount struct{ negotiating, refusing int }

// waiter is a connection waiting for its address to negotiate fewer than
// MaxHandshakesPerAddr connections.
type waiter struct {
	nc    net.Conn
	mode  TLSMode
	timer *time.Timer // refuses the waiter when it waited too long
}

// register adds a connection for nc and returns it. It returns nil when
// the server is shutting down (nc is closed), when nc waits for its
// address (it is started later, by negotiated), or when it is refused.
func (s *Server) register(nc net.Conn, mode TLSMode) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		nc.Close()
		return nil
	}
	addr := addrKey(nc)
	if addr != "" && s.mu.perAddr[addr].negotiating >= s.opts.MaxHandshakesPerAddr {
		s.waitLocked(nc, mode, addr)
		return nil
	}
	return s.admitLocked(nc, mode, addr)
}

// admitLocked serves nc unless the server serves MaxConns connections
// already; then it refuses nc and returns nil.
func (s *Server) admitLocked(nc net.Conn, mode TLSMode, addr string) *conn {
	if len(s.mu.conns) >= s.opts.MaxConns {
		s.refuseLocked(nc, addr, fmt.Sprintf(
			"too many connections: the server serves at most %d (hlfs serve --max-connections); try again later", s.opts.MaxConns))
		return nil
	}
	c := newConn(s, nc, mode, addr)
	s.mu.conns[c] = struct{}{}
	if addr != "" {
		pa := s.mu.perAddr[addr]
		pa.negotiating++
		s.mu.perAddr[addr] = pa
	}
	s.handlers.Add(1)
	return c
}

// waitLocked queues nc behind the negotiating connections of addr, or
// refuses it when too many wait.
func (s *Server) waitLocked(nc net.Conn, mode TLSMode, addr string) {
	if len(s.mu.waiting[addr]) >= s.opts.MaxConns || s.mu.nwaiting >= maxWaitingFactor*s.opts.MaxConns {
		s.refuseLocked(nc, addr, s.perAddrWhy(addr))
		return
	}
	w := &waiter{nc: nc, mode: mode}
	wait := s.opts.HandshakeTimeout
	if wait <= 0 {
		wait = DefaultHandshakeTimeout
	}
	w.timer = time.AfterFunc(wait, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.unqueueLocked(addr, w) {
			s.refuseLocked(nc, addr, s.perAddrWhy(addr))
		}
	})
	if len(s.mu.waiting[addr]) == 0 {
		s.log.Warn("nbd: connections wait for others from the same address to negotiate",
			"remote", remoteAddr(nc), "negotiating", s.opts.MaxHandshakesPerAddr)
	}
	s.mu.waiting[addr] = append(s.mu.waiting[addr], w)
	s.mu.nwaiting++
}

// unqueueLocked removes w from the queue of addr; it reports false when w
// was not there (started or dropped already).
func (s *Server) unqueueLocked(addr string, w *waiter) bool {
	q := s.mu.waiting[addr]
	for i, x := range q {
		if x == w {
			q = append(q[:i:i], q[i+1:]...)
			if len(q) == 0 {
				delete(s.mu.waiting, addr)
			} else {
				s.mu.waiting[addr] = q
			}
			s.mu.nwaiting--
			return true
		}
	}
	return false
}

// perAddrWhy is the refusal message for a connection over the
// per-address limits.
func (s *Server) perAddrWhy(addr string) string {
	return fmt.Sprintf("too many connections from %s still negotiating (at most %d, and %d waiting); try again later",
		addr, s.opts.MaxHandshakesPerAddr, len(s.mu.waiting[addr]))
}

// negotiated records that c's handshake ended (either way): it no longer
// counts against MaxHandshakesPerAddr, and the first connection waiting
// for its address starts. Called once per conn.
func (s *Server) negotiated(c *conn) {
	if c.addr == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.decAddrLocked(c.addr, addrCount{negotiating: 1})
	if s.closing.Load() {
		return
	}
	q := s.mu.waiting[c.addr]
	if len(q) == 0 || s.mu.perAddr[c.addr].negotiating >= s.opts.MaxHandshakesPerAddr {
		return
	}
	w := q[0]
	s.unqueueLocked(c.addr, w)
	w.timer.Stop() // if it fired, it finds w gone from the queue
	if nc := s.admitLocked(w.nc, w.mode, c.addr); nc != nil {
		go s.run(nc)
	}
}

// dropWaitingLocked closes every waiting connection (at shutdown).
func (s *Server) dropWaitingLocked() {
	for addr, q := range s.mu.waiting {
		for _, w := range q {
			w.timer.Stop()
			w.nc.Close()
		}
		delete(s.mu.waiting, addr)
	}
	s.mu.nwaiting = 0
}

// refuseLocked refuses nc in a new goroutine (see refuse) unless too many
// are being refused already; then it just closes nc.
func (s *Server) refuseLocked(nc net.Conn, addr, why string) {
	pa := s.mu.perAddr[addr]
	if s.closing.Load() {
		nc.Close()
		return
	}
	if len(s.mu.refusing) >= maxRefusing || (addr != "" && pa.refusing >= maxRefusingPerAddr) {
		s.log.Debug("nbd: over the connection limits, closing", "remote", remoteAddr(nc), "why", why)
		nc.Close()
		return
	}
	s.log.Warn("nbd: refusing connection", "remote", remoteAddr(nc), "why", why)
	s.mu.refusing[nc] = addr
	if addr != "" {
		pa.refusing++
		s.mu.perAddr[addr] = pa
	}
	s.handlers.Add(1)
	go s.refuse(nc, why)
}

// decAddrLocked subtracts d from the counts of addr.
func (s *Server) decAddrLocked(addr string, d addrCount) {
	pa := s.mu.perAddr[addr]
	pa.negotiating -= d.negotiating
	pa.refusing -= d.refusing
	if pa == (addrCount{}) {
		delete(s.mu.perAddr, addr)
	} else {
		s.mu.perAddr[addr] = pa
	}
}

// addrKey is the remote IP address of a TCP connection, "" for others.
func addrKey(nc net.Conn) string {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ""
}
