package hdfsbackend

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/colinmarc/hdfs/v2"
)

// clientPool hands out hdfs.Clients, round robin over a few slots: one
// Client serializes its NameNode calls, so concurrent callers spread over
// several. A client whose connection failed is retired: its slot gets a new
// client on next use, and the old one is closed once no Writer or Reader
// holds it any more (closing it ends the lease renewal of its open files).
type clientPool struct {
	opts hdfs.ClientOptions
	log  *slog.Logger
	nn   *addrSet // remote addresses of NameNode connections

	// mu guards the fields below and every pooled.refs and pooled.retired.
	// No I/O happens under it.
	mu struct {
		sync.Mutex
		slots  []*pooled // nil: not connected yet or retired
		next   int
		closed bool
	}
}

// pooled is one client and its users.
type pooled struct {
	c       *hdfs.Client
	slot    int
	refs    int  // holders: calls in progress, open Writers and Readers
	retired bool // out of its slot; close when refs drops to zero
}

// newClientPool returns a pool of size clients; nn collects the remote
// addresses of the NameNode connections opts.NamenodeDialFunc makes.
func newClientPool(opts hdfs.ClientOptions, size int, nn *addrSet, log *slog.Logger) *clientPool {
	p := &clientPool{opts: opts, log: log, nn: nn}
	p.mu.slots = make([]*pooled, size)
	return p
}

// get returns a client with a reference the caller must drop with put.
// It connects a new client when the chosen slot is empty.
func (p *clientPool) get() (*pooled, error) {
	p.mu.Lock()
	i := p.mu.next
	p.mu.next = (p.mu.next + 1) % len(p.mu.slots)
	p.mu.Unlock()
	return p.getSlot(i)
}

// getSlot is get for slot i: after retiring a client, the caller retries
// on the same slot, that is on a new connection.
func (p *clientPool) getSlot(i int) (*pooled, error) {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if pc := p.mu.slots[i]; pc != nil {
		pc.refs++
		p.mu.Unlock()
		return pc, nil
	}
	p.mu.Unlock()

	c, err := p.connect()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		go c.Close()
		return nil, ErrClosed
	}
	if pc := p.mu.slots[i]; pc != nil {
		// Another caller filled the slot meanwhile; use theirs.
		go c.Close()
		pc.refs++
		return pc, nil
	}
	pc := &pooled{c: c, slot: i, refs: 1}
	p.mu.slots[i] = pc
	return pc, nil
}

// connect dials a new client and fetches the server defaults, which the
// library caches in the client without a lock: fetching them before the
// client is shared keeps later calls from racing on that cache.
func (p *clientPool) connect() (*hdfs.Client, error) {
	c, err := hdfs.NewClient(p.opts)
	if err != nil {
		return nil, err
	}
	if _, err := c.ServerDefaults(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// put drops a reference taken by get.
func (p *clientPool) put(pc *pooled) {
	p.mu.Lock()
	pc.refs--
	closeIt := pc.retired && pc.refs == 0
	p.mu.Unlock()
	if closeIt {
		pc.c.Close()
	}
}

// retire takes pc out of its slot after a connection failure (err).
func (p *clientPool) retire(pc *pooled, err error) {
	p.mu.Lock()
	found := false
	for i, s := range p.mu.slots {
		if s == pc {
			p.mu.slots[i] = nil
			pc.retired = true
			found = true
		}
	}
	p.mu.Unlock()
	if found {
		p.log.Info("hdfsbackend: dropping a namenode connection; the next call reconnects", "cause", err.Error())
	}
}

// close retires every client; those still held close when released.
func (p *clientPool) close() {
	p.mu.Lock()
	p.mu.closed = true
	var idle []*hdfs.Client
	for i, pc := range p.mu.slots {
		if pc == nil {
			continue
		}
		p.mu.slots[i] = nil
		pc.retired = true
		if pc.refs == 0 {
			idle = append(idle, pc.c)
		}
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

// namenodeDialer returns the dial function for NameNode connections: each
// Read and Write gets timeout to complete (the connection only reads while
// a call waits for its answer, so an idle one never times out), and the
// remote address goes into nn, so errors can tell NameNode connections
// from DataNode ones.
func namenodeDialer(timeout time.Duration, nn *addrSet) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		nn.add(c.RemoteAddr().String())
		return &deadlineConn{Conn: c, timeout: timeout}, nil
	}
}

// namenodeConnErr reports whether err, met by a Writer or Reader (which
// also talk to DataNodes), is a failed NameNode connection.
func (p *clientPool) namenodeConnErr(err error) bool {
	if notSent(err) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Addr != nil {
		return p.nn.has(oe.Addr.String())
	}
	return false
}

// addrSet is a set of "ip:port" strings, safe for concurrent use.
type addrSet struct {
	mu sync.Mutex // guards m
	m  map[string]bool
}

func (s *addrSet) add(a string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]bool)
	}
	s.m[a] = true
}

func (s *addrSet) has(a string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[a]
}

type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
