package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// Call sends req to the server on the Unix socket path and waits for its
// reply: at most timeout, connection included (0 means no bound), and until
// ctx is done. When result is not nil the request must have a result (OpGC),
// which is decoded into it.
//
// Call returns nil when the request succeeded, a *ServerError carrying the
// server's message when the server refused or failed it, an error wrapping
// ErrTimeout when no reply came in time, one wrapping ctx.Err() when ctx
// ended first (the server may still carry the request out), and another
// error when the server could not be reached or its reply was malformed.
func Call(ctx context.Context, path string, req Request, timeout time.Duration, result any) error {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	d := net.Dialer{Deadline: deadline}
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return callError(ctx, path, timeout, err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	// Ending ctx interrupts the I/O below, which then fails with a
	// deadline error that callError words as ctx's.
	defer context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })()
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return callError(ctx, path, timeout, err)
	}
	line, err := readLine(conn)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return callError(ctx, path, timeout, err)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("admin: %s closed the connection without replying", path)
	case err != nil:
		return fmt.Errorf("admin: bad reply from %s: %w", path, err)
	}
	var resp response
	if err := json.Unmarshal(line, &resp); err != nil {
		return fmt.Errorf("admin: bad reply from %s: %v", path, err)
	}
	switch {
	case resp.Error != "":
		return &ServerError{Msg: resp.Error}
	case !resp.OK:
		return fmt.Errorf("admin: bad reply from %s: neither ok nor an error", path)
	case result == nil:
		return nil
	case len(resp.Result) == 0 || string(resp.Result) == "null":
		return fmt.Errorf("admin: bad reply from %s: no result", path)
	}
	if err := json.Unmarshal(resp.Result, result); err != nil {
		return fmt.Errorf("admin: bad reply from %s: result: %v", path, err)
	}
	return nil
}

// callError words a failure to talk to the server: the cause without the
// "dial unix PATH:" decoration.
func callError(ctx context.Context, path string, timeout time.Duration, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("admin: stopped waiting for %s: %w", path, ctx.Err())
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: %s did not answer within %v", ErrTimeout, path, timeout)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
		var sys *os.SyscallError
		if errors.As(err, &sys) {
			err = sys.Err
		}
	}
	return fmt.Errorf("admin: cannot reach %s: %w", path, err)
}
