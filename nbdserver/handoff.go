package nbdserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// The hand-off option carries a request from one hlfs serve to another
// during the handshake (docs/design.md, "Roaming"): a standby asks the
// owner of a volume to hand it over. It is private to hlfs: an option
// number no NBD specification assigns, which any other server answers with
// NBD_REP_ERR_UNSUP. The data is opaque to this package (lfs.HandOffRequest
// encodes and authenticates it); the answer is NBD_REP_ACK once
// Options.HandOff returned nil, or NBD_REP_ERR_POLICY carrying its error.
// It is an option like any other: under TLSRequire it needs STARTTLS
// first, and a client Authorize refused gets the refusal.

// OptHandOff is the option number of the hand-off option ("HLF" 1).
const OptHandOff = uint32(0x484c4601)

// ErrHandOffUnsupported is returned by RequestHandOff when the server does
// not take hand-off requests (Options.HandOff nil, or not an hlfs server).
var ErrHandOffUnsupported = errors.New("nbdserver: the server takes no hand-off requests")

// optHandOff answers the hand-off option.
func (c *conn) optHandOff(data []byte) error {
	h := c.srv.opts.HandOff
	if h == nil {
		return c.optError(OptHandOff, repErrUnsup, "this server takes no hand-off requests")
	}
	if err := h(data); err != nil {
		msg := err.Error()
		if len(msg) > maxStringLen {
			msg = msg[:maxStringLen]
		}
		return c.optError(OptHandOff, repErrPolicy, msg)
	}
	return c.optReply(OptHandOff, repAck, nil)
}

// RequestHandOff connects to the NBD server at address on network ("tcp"
// or "unix"), negotiates (with STARTTLS first when tlsConfig is not nil),
// sends request in the hand-off option and returns when the server
// answered: nil for NBD_REP_ACK, ErrHandOffUnsupported for
// NBD_REP_ERR_UNSUP, else an error with the server's message. ctx bounds
// the whole exchange (without a deadline: 30 s).
func RequestHandOff(ctx context.Context, network, address string, request []byte, tlsConfig *tls.Config) error {
	if len(request) > maxOptionLen {
		return fmt.Errorf("nbdserver: hand-off request of %d bytes (at most %d)", len(request), maxOptionLen)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	nc, err := (&net.Dialer{}).DialContext(ctx, network, address)
	if err != nil {
		return fmt.Errorf("nbdserver: hand-off request to %s: %w", address, err)
	}
	defer nc.Close()
	// The context ends the exchange: its error is set before this runs,
	// so a read or write cut short reports it.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := requestHandOff(nc, request, tlsConfig); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return fmt.Errorf("nbdserver: hand-off request to %s: %w", address, err)
	}
	return nil
}

func requestHandOff(nc net.Conn, request []byte, tlsConfig *tls.Config) error {
	br := bufio.NewReader(nc)
	var g [greetingSize]byte
	if _, err := io.ReadFull(br, g[:]); err != nil {
		return fmt.Errorf("reading the greeting: %w", err)
	}
	if binary.BigEndian.Uint64(g[0:8]) != magicNBD || binary.BigEndian.Uint64(g[8:16]) != magicOption {
		return errors.New("not a newstyle NBD server")
	}
	if binary.BigEndian.Uint16(g[16:18])&flagFixedNewstyle == 0 {
		return errors.New("the server is not fixed-newstyle")
	}
	var cf [4]byte
	binary.BigEndian.PutUint32(cf[:], clientFlagFixedNewstyle)
	if _, err := nc.Write(cf[:]); err != nil {
		return err
	}
	if tlsConfig != nil {
		typ, msg, err := clientOption(nc, br, optStartTLS, nil)
		if err != nil {
			return err
		}
		if typ != repAck {
			return fmt.Errorf("STARTTLS refused (reply %#x): %s", typ, msg)
		}
		tc := tls.Client(nc, tlsConfig)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		nc, br = tc, bufio.NewReader(tc)
	}
	typ, msg, err := clientOption(nc, br, OptHandOff, request)
	if err != nil {
		return err
	}
	_, _, _ = clientOption(nc, br, optAbort, nil) // best effort: a polite end
	switch {
	case typ == repAck:
		return nil
	case typ == repErrUnsup:
		return fmt.Errorf("%w: %s", ErrHandOffUnsupported, msg)
	case typ == repErrTLSReqd:
		return fmt.Errorf("the server requires TLS: %s", msg)
	case typ&repErrorBit != 0:
		return fmt.Errorf("refused: %s", msg)
	}
	return fmt.Errorf("unexpected reply %#x", typ)
}

// clientOption sends option opt with data and reads its one reply: the
// reply type and, for an error, its message.
func clientOption(w io.Writer, br *bufio.Reader, opt uint32, data []byte) (uint32, string, error) {
	b := make([]byte, optHeaderSize, optHeaderSize+len(data))
	binary.BigEndian.PutUint64(b[0:8], magicOption)
	binary.BigEndian.PutUint32(b[8:12], opt)
	binary.BigEndian.PutUint32(b[12:16], uint32(len(data)))
	if _, err := w.Write(append(b, data...)); err != nil {
		return 0, "", err
	}
	var h [optRepHeaderSize]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, "", fmt.Errorf("reading the reply to option %#x: %w", opt, err)
	}
	if binary.BigEndian.Uint64(h[0:8]) != magicOptRep || binary.BigEndian.Uint32(h[8:12]) != opt {
		return 0, "", fmt.Errorf("malformed reply to option %#x", opt)
	}
	typ, n := binary.BigEndian.Uint32(h[12:16]), binary.BigEndian.Uint32(h[16:20])
	if n > maxStringLen+4 {
		return 0, "", fmt.Errorf("reply of %d bytes to option %#x", n, opt)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(br, msg); err != nil {
		return 0, "", err
	}
	return typ, string(msg), nil
}
