package admin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ioTimeout bounds how long the server waits for a client to send its
// request and to take the reply; a handler call itself is not bounded.
const ioTimeout = 10 * time.Second

// Server answers requests on a Unix socket. Close stops it.
type Server struct {
	path string
	l    *net.UnixListener
	h    Handler
	wg   sync.WaitGroup // the accept loop and every connection

	// mu guards the fields below; no I/O happens under it except setting
	// deadlines.
	mu struct {
		sync.Mutex
		closed bool
		// reading holds the connections still reading their request;
		// Close interrupts them.
		reading map[net.Conn]struct{}
	}
}

// Listen listens on the Unix socket path, which only this user may use (mode
// 0600), and serves h until Close. A socket file left behind by a server
// that is gone is replaced; a live server on path makes Listen fail with an
// error wrapping ErrInUse, and a path that is not a socket is never removed.
func Listen(path string, h Handler) (*Server, error) {
	l, err := listenUnix(path)
	if err != nil {
		return nil, err
	}
	// The directory's permissions protect the socket until this chmod; in a
	// shared directory (/tmp) the window is the time between two syscalls.
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("admin: %w", err)
	}
	s := &Server{path: path, l: l, h: h}
	s.mu.reading = make(map[net.Conn]struct{})
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// listenUnix listens on path, replacing a stale socket file.
func listenUnix(path string) (*net.UnixListener, error) {
	addr := &net.UnixAddr{Name: path, Net: "unix"}
	l, err := net.ListenUnix("unix", addr)
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		return l, listenError(path, err)
	}
	fi, serr := os.Lstat(path)
	if serr != nil || fi.Mode()&os.ModeSocket == 0 {
		return nil, fmt.Errorf("admin: cannot listen on %s: it exists and is not a socket", path)
	}
	if conn, derr := net.DialTimeout("unix", path, time.Second); derr == nil {
		conn.Close()
		return nil, fmt.Errorf("%w: %s", ErrInUse, path)
	}
	if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		return nil, fmt.Errorf("admin: cannot remove the stale socket %s: %w", path, rerr)
	}
	l, err = net.ListenUnix("unix", addr)
	return l, listenError(path, err)
}

// listenError words a listen error without repeating the path twice.
func listenError(path string, err error) error {
	if err == nil {
		return nil
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
		var sys *os.SyscallError
		if errors.As(err, &sys) {
			err = sys.Err
		}
	}
	return fmt.Errorf("admin: cannot listen on %s: %w", path, err)
}

// Path returns the socket path.
func (s *Server) Path() string { return s.path }

// Close stops accepting, drops connections still sending their request,
// waits for the requests being handled to be answered and removes the socket
// file. It returns the error of closing the listener.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.closed = true
	err := s.l.Close() // removes the socket file
	for conn := range s.mu.reading {
		conn.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		conn, err := s.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// EMFILE and the like: back off rather than spin.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.mu.closed {
			s.mu.Unlock()
			conn.Close()
			return
		}
		// Under mu, so that Close's deadline is never replaced by this one.
		conn.SetReadDeadline(time.Now().Add(ioTimeout))
		s.mu.reading[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(conn)
	}
}

// serveConn reads one request, handles it and replies.
func (s *Server) serveConn(conn net.Conn) {
	defer s.wg.Done()
	defer conn.Close()
	line, rerr := readLine(conn)
	s.mu.Lock()
	delete(s.mu.reading, conn)
	closed := s.mu.closed
	s.mu.Unlock()
	if closed && rerr != nil {
		return // interrupted by Close
	}
	if errors.Is(rerr, io.EOF) {
		return // the client went away without asking anything
	}
	var resp response
	switch {
	case errors.Is(rerr, os.ErrDeadlineExceeded):
		resp.Error = fmt.Sprintf("no request within %v", ioTimeout)
	case rerr != nil:
		resp.Error = "malformed request: " + rerr.Error()
	default:
		result, err := s.handle(line)
		if err == nil && result != nil {
			resp.Result, err = json.Marshal(result)
		}
		if err != nil {
			resp.Error = oneLine(err.Error())
		} else {
			resp.OK = true
		}
	}
	b, _ := json.Marshal(resp)
	conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	conn.Write(append(b, '\n'))
}

// handle decodes a request line, checks it and calls the handler. It
// returns the request's result, nil for requests without one.
func (s *Server) handle(line []byte) (any, error) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("malformed request: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return nil, errors.New("malformed request: more than one JSON value")
	}
	var call func(vol, snap string) error
	switch req.Op {
	case OpSnapshotCreate:
		call = s.h.CreateSnapshot
	case OpSnapshotRemove:
		call = s.h.DeleteSnapshot
	case OpGC:
		return s.handleGC(req)
	case OpScrub:
		return s.handleScrub(req)
	default:
		return nil, fmt.Errorf("unknown request %q (this server knows %s, %s, %s and %s)", req.Op, OpSnapshotCreate, OpSnapshotRemove, OpGC, OpScrub)
	}
	if req.Volume == "" || req.Snapshot == "" {
		return nil, fmt.Errorf("malformed request: %s needs a volume and a snapshot", req.Op)
	}
	if req.GC != nil {
		return nil, fmt.Errorf("malformed request: %s takes no gc options", req.Op)
	}
	if req.Scrub != nil {
		return nil, fmt.Errorf("malformed request: %s takes no scrub options", req.Op)
	}
	return nil, call(req.Volume, req.Snapshot)
}

// handleGC checks an OpGC request and calls the handler.
func (s *Server) handleGC(req Request) (any, error) {
	var opts GCOptions
	if req.GC != nil {
		opts = *req.GC
	}
	switch {
	case req.Volume == "":
		return nil, fmt.Errorf("malformed request: %s needs a volume", req.Op)
	case req.Snapshot != "":
		return nil, fmt.Errorf("malformed request: %s takes no snapshot: it cleans the whole volume", req.Op)
	case opts.Defrag < -1:
		return nil, fmt.Errorf("malformed request: %s defrag %d is below -1", req.Op, opts.Defrag)
	case opts.Rate < 0:
		return nil, fmt.Errorf("malformed request: %s rate %d is negative", req.Op, opts.Rate)
	case !(opts.MaxUtilization >= 0 && opts.MaxUtilization <= 1):
		return nil, fmt.Errorf("malformed request: %s max_utilization %v is not from 0 to 1", req.Op, opts.MaxUtilization)
	}
	stats, err := s.h.GC(req.Volume, opts)
	if err != nil {
		return nil, err
	}
	return stats, nil
}

// handleScrub checks an OpScrub request and calls the handler.
func (s *Server) handleScrub(req Request) (any, error) {
	var opts ScrubOptions
	if req.Scrub != nil {
		opts = *req.Scrub
	}
	switch {
	case req.Volume == "":
		return nil, fmt.Errorf("malformed request: %s needs a volume", req.Op)
	case req.Snapshot != "":
		return nil, fmt.Errorf("malformed request: %s takes no snapshot: it verifies the volume and all its snapshots", req.Op)
	case req.GC != nil:
		return nil, fmt.Errorf("malformed request: %s takes no gc options", req.Op)
	case opts.Rate < 0:
		return nil, fmt.Errorf("malformed request: %s rate %d is negative", req.Op, opts.Rate)
	}
	return s.h.Scrub(req.Volume, opts)
}

// readLine reads one line of at most maxMessage bytes, without its "\n".
func readLine(r io.Reader) ([]byte, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxMessage+1)).ReadBytes('\n')
	switch {
	case err == nil:
		return bytes.TrimSuffix(line, []byte("\n")), nil
	case len(line) > maxMessage:
		return nil, fmt.Errorf("longer than %d bytes", maxMessage)
	case errors.Is(err, io.EOF) && len(line) == 0:
		return nil, io.EOF // closed before sending anything
	case errors.Is(err, io.EOF):
		return nil, errors.New("no newline at the end")
	}
	return nil, err // os.ErrDeadlineExceeded when the deadline passed
}

// oneLine makes msg one line.
func oneLine(msg string) string {
	msg = strings.TrimSpace(strings.ReplaceAll(msg, "\r\n", "\n"))
	return strings.ReplaceAll(msg, "\n", "; ")
}
