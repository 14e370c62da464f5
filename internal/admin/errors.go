package admin

import "errors"

var (
	// ErrTimeout is wrapped by Call's error when the server did not answer
	// within the timeout.
	ErrTimeout = errors.New("admin: no reply in time")
	// ErrInUse is wrapped by Listen's error when a live server listens on
	// the socket path.
	ErrInUse = errors.New("admin: another server is listening there")
)

// ServerError is returned by Call when the server refused or failed the
// request. Its message is the server's, meant to be shown as is; it carries
// no package prefix.
type ServerError struct {
	// Msg is the server's one-line message.
	Msg string
}

// Error returns the server's message.
func (e *ServerError) Error() string { return e.Msg }
