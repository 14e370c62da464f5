package nbdserver

import (
	"log/slog"
	"time"
)

// Defaults and bounds for Options.
const (
	// DefaultMaxConns is the default Options.MaxConns.
	DefaultMaxConns = 128
	// DefaultMaxInFlightBytes is the default Options.MaxInFlightBytes.
	DefaultMaxInFlightBytes = 64 << 20
	// DefaultMaxRequestsPerConn is the default Options.MaxRequestsPerConn.
	DefaultMaxRequestsPerConn = 32
	// DefaultMaxPayload is the default Options.MaxPayload (the size the
	// spec says every client may use).
	DefaultMaxPayload = 32 << 20
	// DefaultHandshakeTimeout is the default Options.HandshakeTimeout.
	DefaultHandshakeTimeout = 30 * time.Second

	// MinMaxPayload is the smallest MaxPayload accepted: the spec requires
	// unfragmented reads of up to 64 KiB.
	MinMaxPayload = 64 << 10
	// MaxMaxPayload is the largest MaxPayload accepted.
	MaxMaxPayload = 1 << 30

	// maxOptionLen bounds the data of one handshake option; longer options
	// close the connection.
	maxOptionLen = 64 << 10
	// maxExtents bounds the descriptors in one NBD_CMD_BLOCK_STATUS reply.
	maxExtents = 8192
)

// Options tune a Server. The zero value selects every default; zero or
// negative limits also select the default.
type Options struct {
	// MaxConns bounds the open connections (handshake and transmission);
	// further connections are accepted and closed at once. Default 128.
	MaxConns int
	// MaxInFlightBytes bounds, per connection, the READ and WRITE bytes of
	// requests being served; the connection stops reading requests until
	// replies drain. A single larger request still runs alone. Default 64 MiB.
	MaxInFlightBytes int64
	// MaxRequestsPerConn bounds the requests served concurrently on one
	// connection. Default 32.
	MaxRequestsPerConn int
	// MaxPayload is the largest READ or WRITE length served, advertised as
	// the maximum block size. Larger reads fail with EOVERFLOW (structured
	// replies) or EINVAL; larger writes fail with EINVAL after their payload
	// is skipped, or close the connection when the payload exceeds twice
	// MaxPayload. Clamped to [MinMaxPayload, MaxMaxPayload]. Default 32 MiB.
	MaxPayload int
	// HandshakeTimeout bounds the time from accept to the end of option
	// negotiation. Default 30s; negative means no limit.
	HandshakeTimeout time.Duration
	// Logger receives connection events and export errors. Nil discards.
	Logger *slog.Logger
}

// withDefaults returns o with every unset or invalid field replaced.
func (o Options) withDefaults() Options {
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxInFlightBytes <= 0 {
		o.MaxInFlightBytes = DefaultMaxInFlightBytes
	}
	if o.MaxRequestsPerConn <= 0 {
		o.MaxRequestsPerConn = DefaultMaxRequestsPerConn
	}
	switch {
	case o.MaxPayload <= 0:
		o.MaxPayload = DefaultMaxPayload
	case o.MaxPayload < MinMaxPayload:
		o.MaxPayload = MinMaxPayload
	case o.MaxPayload > MaxMaxPayload:
		o.MaxPayload = MaxMaxPayload
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}
