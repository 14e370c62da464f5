package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// Call sends req to the server on the Unix socket path and waits at most
// timeout, connection included, for its reply. It returns nil when the
// request succeeded, a *ServerError carrying the server's message when the
// server refused or failed it, an error wrapping ErrTimeout when no reply
// came in time, and another error when the server could not be reached or
// its reply was malformed.
func Call(path string, req Request, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	d := net.Dialer{Deadline: deadline}
	conn, err := d.Dial("unix", path)
	if err != nil {
		return callError(path, timeout, err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return callError(path, timeout, err)
	}
	line, err := readLine(conn)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return callError(path, timeout, err)
		}
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
	}
	return nil
}

// callError words a failure to talk to the server: the cause without the
// "dial unix PATH:" decoration.
func callError(path string, timeout time.Duration, err error) error {
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
