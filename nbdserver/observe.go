package nbdserver

import (
	"errors"
	"fmt"
	"time"
)

// RequestEvent describes one request of the transmission phase once it is
// over: its reply was sent (or the connection broke while sending it), or
// it was refused without reaching the export. See Options.Observe.
type RequestEvent struct {
	// Export is the export name the connection chose.
	Export string
	// Op is the command: "read", "write", "flush", "trim", "zero" (WRITE_ZEROES),
	// "block_status", "cache" or "unknown".
	Op string
	// Bytes is the request's length: the bytes read or written for "read"
	// and "write", the range for the others (0 for "flush").
	Bytes int64
	// Duration runs from the moment the request header was read (before a
	// WRITE's payload) to the moment its reply was handed to the socket.
	Duration time.Duration
	// Err is nil for a request that succeeded; otherwise why it failed:
	// the export's error, or an error wrapping ErrInvalidRequest for a
	// request refused before the export saw it (bad flags, range, a write
	// to a read-only export).
	Err error
}

// ErrInvalidRequest is wrapped by RequestEvent.Err for a request the server
// answered with an error without calling the export.
var ErrInvalidRequest = errors.New("nbdserver: invalid request")

// opName names a command in RequestEvent.Op.
func opName(typ uint16) string {
	switch typ {
	case cmdRead:
		return "read"
	case cmdWrite:
		return "write"
	case cmdFlush:
		return "flush"
	case cmdTrim:
		return "trim"
	case cmdCache:
		return "cache"
	case cmdWriteZeroes:
		return "zero"
	case cmdBlockStatus:
		return "block_status"
	default:
		return "unknown"
	}
}

// observe reports a finished request to Options.Observe, if set.
func (c *conn) observe(s *session, req request, err error) {
	fn := c.srv.opts.Observe
	if fn == nil {
		return
	}
	n := int64(req.length)
	if req.typ == cmdFlush {
		n = 0
	}
	fn(RequestEvent{Export: s.name, Op: opName(req.typ), Bytes: n, Duration: time.Since(req.start), Err: err})
}

// Connections is the number of client connections being served now
// (negotiating or in transmission; not those being refused).
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mu.conns)
}

// invalidRequest is RequestEvent.Err for a request refused with msg.
func invalidRequest(msg string) error {
	return fmt.Errorf("%w: %s", ErrInvalidRequest, msg)
}
