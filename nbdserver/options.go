package nbdserver

import (
	"crypto/tls"
	"log/slog"
	"strconv"
	"time"

	"github.com/hlfs/hlfs/internal/membudget"
)

// Defaults and bounds for Options.
const (
	// DefaultMaxConns is the default Options.MaxConns.
	DefaultMaxConns = 128
	// DefaultMaxHandshakesPerAddr is the default Options.MaxHandshakesPerAddr.
	DefaultMaxHandshakesPerAddr = 16
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

	// refuseTimeout bounds the life of a connection being refused (see
	// Server.refuse); maxRefusing and maxRefusingPerAddr bound how many are
	// refused at once, in all and per remote IP address. Connections beyond
	// those are closed without a word.
	refuseTimeout      = 5 * time.Second
	maxRefusing        = 32
	maxRefusingPerAddr = 4
	// refuseMaxOptions is the number of options a refused client may send
	// before the connection is closed.
	refuseMaxOptions = 8
)

// Options tune a Server. The zero value selects every default; zero or
// negative limits also select the default.
type Options struct {
	// MaxConns bounds the connections served (handshake and transmission).
	// A connection beyond it is refused: it gets the greeting, and every
	// option it sends (the first is enough for every client) is answered
	// with NBD_REP_ERR_POLICY carrying "too many connections", then it is
	// closed. Default 128.
	MaxConns int
	// MaxHandshakesPerAddr bounds the TCP connections from one remote IP
	// address that negotiate at once (between accept and the start of
	// transmission, at most HandshakeTimeout each). More connections from
	// that address wait, not yet greeted, until one of those finishes, and
	// are refused like one beyond MaxConns after HandshakeTimeout or when
	// too many wait. Sockets from one address that never finish the
	// handshake therefore hold at most this many of the MaxConns slots.
	// Unix-domain connections are not counted. Default 16.
	MaxHandshakesPerAddr int
	// MaxInFlightBytes bounds, per connection, the READ and WRITE bytes of
	// requests being served; the connection stops reading requests until
	// replies drain. A single larger request still runs alone. Default 64 MiB.
	MaxInFlightBytes int64
	// Budget, when not nil, is the process's memory budget: the READ and
	// WRITE payloads of all connections in flight count against it (as
	// request memory: at most half of it), and a connection stops reading
	// requests while its next one does not fit. nil: only
	// MaxInFlightBytes bounds them.
	Budget *membudget.Budget
	// MaxRequestsPerConn bounds the requests served concurrently on one
	// connection. Default 32.
	MaxRequestsPerConn int
	// MaxPayload is the largest READ or WRITE length served, advertised as
	// the maximum block size. Larger reads fail with EOVERFLOW (structured
	// replies) or EINVAL; larger writes fail with EINVAL after their payload
	// is skipped, or close the connection when the payload exceeds twice
	// MaxPayload. Clamped to [MinMaxPayload, MaxMaxPayload]. Default 32 MiB.
	MaxPayload int
	// HandshakeTimeout bounds, during option negotiation, the time from
	// accept to the first option, between two options and to read and
	// answer one option: a client that sends nothing is dropped after it,
	// one that goes on negotiating is not (MaxHandshakesPerAddr bounds
	// those). Default 30s; negative means no limit.
	HandshakeTimeout time.Duration
	// TLS enables NBD_OPT_STARTTLS; nil serves without TLS (STARTTLS gets
	// NBD_REP_ERR_UNSUP).
	TLS *TLSOptions
	// Logger receives connection events and export errors. Nil discards.
	Logger *slog.Logger
	// Observe, when set, is called once for every request of the
	// transmission phase after its reply was sent, or after the request
	// failed (see RequestEvent), on the goroutine that served it: it must be
	// quick and safe for concurrent use. NBD_CMD_DISC is not reported. Nil
	// costs nothing per request.
	Observe func(RequestEvent)
	// HandOff, when set, answers the hlfs hand-off option (OptHandOff,
	// handoff.go) with request, the option's data: nil is NBD_REP_ACK, an
	// error NBD_REP_ERR_POLICY with its text. It runs on the connection's
	// goroutine during the handshake (HandshakeTimeout applies) and is
	// called from many goroutines. Nil: the option is unsupported.
	HandOff func(request []byte) error
}

// TLSMode is how a listener's connections use TLS.
type TLSMode int

// TLS modes; the names in parentheses are the NBD specification's. The
// zero value is TLSRequire.
const (
	// TLSRequire insists on TLS (FORCEDTLS): before STARTTLS every option
	// but STARTTLS and ABORT gets NBD_REP_ERR_TLS_REQD, and
	// NBD_OPT_EXPORT_NAME closes the connection.
	TLSRequire TLSMode = iota
	// TLSOn lets the client choose (SELECTIVETLS without TLS-only
	// exports): every option works in clear, and STARTTLS upgrades.
	TLSOn
	// TLSOff serves in clear only (NOTLS): STARTTLS gets
	// NBD_REP_ERR_POLICY when the server has TLS configured, else
	// NBD_REP_ERR_UNSUP.
	TLSOff
)

// String returns "off", "on" or "require".
func (m TLSMode) String() string {
	switch m {
	case TLSOff:
		return "off"
	case TLSOn:
		return "on"
	case TLSRequire:
		return "require"
	}
	return "TLSMode(" + strconv.Itoa(int(m)) + ")"
}

// TLSOptions configure NBD_OPT_STARTTLS.
type TLSOptions struct {
	// Config is the server side of the TLS handshake: certificates, client
	// authentication, versions. It is used for every upgrade, so a
	// GetConfigForClient hook can hand out new certificates without a
	// restart. At least TLS 1.2 is enforced. Required.
	Config *tls.Config
	// Mode is the mode of the listeners passed to Server.Serve (the zero
	// value is TLSRequire); Server.ServeMode serves a listener in another.
	Mode TLSMode
	// Authorize, when set, is called once the TLS handshake succeeded.
	// When it returns an error, every later option but NBD_OPT_ABORT is
	// answered with NBD_REP_ERR_POLICY carrying the error's text, and
	// NBD_OPT_EXPORT_NAME closes the connection: the client learns why
	// and never reaches an export. It is called from many goroutines.
	Authorize func(*tls.ConnectionState) error
}

// withDefaults returns o with every unset or invalid field replaced.
func (o Options) withDefaults() Options {
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxHandshakesPerAddr <= 0 {
		o.MaxHandshakesPerAddr = DefaultMaxHandshakesPerAddr
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
