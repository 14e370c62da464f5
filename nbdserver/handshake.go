package nbdserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// session is what negotiation settles for the transmission phase.
type session struct {
	name       string
	exp        Export
	info       ExportInfo
	size       uint64
	flags      uint16        // transmission flags sent to the client
	structured bool          // NBD_OPT_STRUCTURED_REPLY acknowledged
	meta       []metaContext // contexts selected for this export (meta_context.go)
}

// negotiation is the state option haggling builds up on one connection.
type negotiation struct {
	noZeroes   bool          // client set NBD_FLAG_C_NO_ZEROES
	structured bool          // NBD_OPT_STRUCTURED_REPLY acknowledged
	meta       metaSelection // the last NBD_OPT_SET_META_CONTEXT (meta_context.go)
}

// handshake runs fixed newstyle negotiation. It returns the session chosen
// by NBD_OPT_EXPORT_NAME or NBD_OPT_GO, or an error after which the
// connection must be closed (errAbort for NBD_OPT_ABORT).
func (c *conn) handshake() (*session, error) {
	if err := c.handshakeDeadline(); err != nil {
		return nil, err
	}
	var b [greetingSize]byte
	putGreeting(b[:])
	if _, err := c.bw.Write(b[:]); err != nil {
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(c.br, b[:4]); err != nil {
		return nil, err
	}
	cflags := binary.BigEndian.Uint32(b[:4])
	if cflags&^clientFlagsKnown != 0 {
		return nil, fmt.Errorf("%w: %#x", errUnknownClientFlags, cflags)
	}
	neg := negotiation{noZeroes: cflags&clientFlagNoZeroes != 0}

	for {
		// Idle between options, and each option with its answer, within
		// the timeout: a client that probes many exports (nbdinfo --list)
		// may take longer in all.
		if err := c.handshakeDeadline(); err != nil {
			return nil, err
		}
		var h [optHeaderSize]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return nil, err
		}
		if binary.BigEndian.Uint64(h[0:8]) != magicOption {
			return nil, errBadOptionMagic
		}
		opt := binary.BigEndian.Uint32(h[8:12])
		n := binary.BigEndian.Uint32(h[12:16])
		if n > maxOptionLen {
			return nil, fmt.Errorf("%w: option %d, %d bytes", errOptionTooLong, opt, n)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(c.br, data); err != nil {
			return nil, err
		}
		if err := c.handshakeDeadline(); err != nil {
			return nil, err
		}
		sess, err := c.option(&neg, opt, data)
		if err == nil {
			err = c.bw.Flush()
		}
		if err != nil {
			return nil, err
		}
		if sess != nil {
			c.nc.SetDeadline(time.Time{})
			return sess, nil
		}
	}
}

// handshakeDeadline gives the negotiation Options.HandshakeTimeout from now
// on, or returns errShuttingDown. Shutdown may have interrupted us (with a
// deadline in the past) before the new deadline replaced it; closing is set
// before it interrupts, so check after.
func (c *conn) handshakeDeadline() error {
	if t := c.srv.opts.HandshakeTimeout; t > 0 {
		c.nc.SetDeadline(time.Now().Add(t))
	}
	if c.srv.closing.Load() {
		return errShuttingDown
	}
	return nil
}

// option answers one option; it returns a session when transmission starts.
// Before STARTTLS under TLSRequire, and after STARTTLS for a client that
// Options.TLS.Authorize refused, only STARTTLS and ABORT are served.
func (c *conn) option(neg *negotiation, opt uint32, data []byte) (*session, error) {
	if opt != optStartTLS && opt != optAbort {
		switch {
		case c.mode == TLSRequire && c.tc == nil:
			if opt == optExportName {
				return nil, errTLSRequired // it cannot carry an error
			}
			return nil, c.optError(opt, repErrTLSReqd, "TLS is required: send NBD_OPT_STARTTLS first")
		case c.authErr != nil:
			if opt == optExportName {
				return nil, fmt.Errorf("%w: %w", errNotAuthorized, c.authErr)
			}
			return nil, c.optError(opt, repErrPolicy, c.authErr.Error())
		}
	}
	switch opt {
	case optExportName:
		return c.optExportName(neg, data)
	case optAbort:
		// The spec asks servers to ignore data sent with ABORT.
		if err := c.optReply(opt, repAck, nil); err != nil {
			return nil, err
		}
		c.bw.Flush()
		return nil, errAbort
	case optList:
		return nil, c.optList(data)
	case optStartTLS:
		return nil, c.optStartTLS(neg, data)
	case optInfo, optGo:
		return c.optInfoGo(neg, opt, data)
	case optStructuredReply:
		if len(data) != 0 {
			return nil, c.optError(opt, repErrInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data")
		}
		neg.structured = true
		return nil, c.optReply(opt, repAck, nil)
	case optListMetaContext, optSetMetaContext:
		return nil, c.optMetaContext(neg, opt, data)
	case OptHandOff:
		return nil, c.optHandOff(data)
	default:
		return nil, c.optError(opt, repErrUnsup, fmt.Sprintf("option %d is not supported", opt))
	}
}

// optExportName ends negotiation the old way: size, flags and (unless the
// client set NO_ZEROES) 124 zero bytes, or a hard disconnect on failure.
func (c *conn) optExportName(neg *negotiation, data []byte) (*session, error) {
	if len(data) > maxStringLen {
		return nil, fmt.Errorf("%w: name of %d bytes", errExportNameRefused, len(data))
	}
	sess, err := c.openSession(neg, string(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errExportNameRefused, err)
	}
	var b [10 + exportNameZeroes]byte
	binary.BigEndian.PutUint64(b[0:8], sess.size)
	binary.BigEndian.PutUint16(b[8:10], sess.flags)
	out := b[:]
	if neg.noZeroes {
		out = b[:10]
	}
	if _, err := c.bw.Write(out); err != nil {
		c.srv.release(sess.name, false)
		return nil, err
	}
	return sess, nil
}

// optList sends one NBD_REP_SERVER per export, then NBD_REP_ACK.
func (c *conn) optList(data []byte) error {
	if len(data) != 0 {
		return c.optError(optList, repErrInvalid, "NBD_OPT_LIST takes no data")
	}
	names := c.srv.cat.Names()
	// Listing a large store may take a while: the reply gets its own time.
	if err := c.handshakeDeadline(); err != nil {
		return err
	}
	for _, name := range names {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(len(name)))
		if err := c.optReply(optList, repServer, b[:], []byte(name)); err != nil {
			return err
		}
	}
	return c.optReply(optList, repAck, nil)
}

// optInfoGo answers NBD_OPT_INFO and NBD_OPT_GO: NBD_INFO_EXPORT, the
// requested NAME and DESCRIPTION, always BLOCK_SIZE, then ACK. Only GO
// returns a session (for the export GO names).
func (c *conn) optInfoGo(neg *negotiation, opt uint32, data []byte) (*session, error) {
	name, infos, ok := parseInfoRequest(data)
	if !ok {
		return nil, c.optError(opt, repErrInvalid, "malformed NBD_OPT_INFO/NBD_OPT_GO data")
	}
	if len(name) > maxStringLen {
		return nil, c.optError(opt, repErrTooBig, "export name too long")
	}
	sess, err := c.openSession(neg, name)
	if err != nil {
		return nil, c.optError(opt, lookupReply(err), lookupMessage(name, err))
	}
	if err := c.infoReplies(opt, name, infos, sess); err != nil || opt != optGo {
		c.srv.release(name, false)
		return nil, err
	}
	return sess, nil
}

// infoReplies sends the NBD_REP_INFO replies and the ACK for sess.
func (c *conn) infoReplies(opt uint32, name string, infos []uint16, sess *session) error {
	var b [14]byte
	binary.BigEndian.PutUint16(b[0:2], infoExport)
	binary.BigEndian.PutUint64(b[2:10], sess.size)
	binary.BigEndian.PutUint16(b[10:12], sess.flags)
	if err := c.optReply(opt, repInfo, b[:12]); err != nil {
		return err
	}
	wantName, wantDesc := false, false
	for _, t := range infos {
		wantName = wantName || t == infoName
		wantDesc = wantDesc || t == infoDescription
	}
	if wantName {
		binary.BigEndian.PutUint16(b[0:2], infoName)
		if err := c.optReply(opt, repInfo, b[:2], []byte(name)); err != nil {
			return err
		}
	}
	if d := sess.info.Description; wantDesc && d != "" {
		if len(d) > maxStringLen {
			d = d[:maxStringLen]
		}
		binary.BigEndian.PutUint16(b[0:2], infoDescription)
		if err := c.optReply(opt, repInfo, b[:2], []byte(d)); err != nil {
			return err
		}
	}
	minSize, pref, maxSize := blockSizes(sess.info, c.srv.opts.MaxPayload)
	binary.BigEndian.PutUint16(b[0:2], infoBlockSize)
	binary.BigEndian.PutUint32(b[2:6], minSize)
	binary.BigEndian.PutUint32(b[6:10], pref)
	binary.BigEndian.PutUint32(b[10:14], maxSize)
	if err := c.optReply(opt, repInfo, b[:14]); err != nil {
		return err
	}
	return c.optReply(opt, repAck, nil)
}

// openSession looks name up and settles the transmission parameters that
// the negotiation so far implies.
func (c *conn) openSession(neg *negotiation, name string) (*session, error) {
	exp, info, err := c.srv.lookup(c, name)
	if err != nil {
		return nil, err
	}
	size := exp.Size()
	if size < 0 {
		size = 0
	}
	return &session{
		name:       name,
		exp:        exp,
		info:       info,
		size:       uint64(size),
		flags:      transmissionFlags(info, neg.structured),
		structured: neg.structured,
		// Contexts selected for another export do not carry over.
		meta: neg.meta.forExport(name, neg.structured),
	}, nil
}

// lookup calls Catalog.Lookup, logging failures other than an unknown or
// refused export. Every export it returns is released with release.
func (s *Server) lookup(c *conn, name string) (Export, ExportInfo, error) {
	exp, info, err := s.cat.Lookup(name)
	if err != nil && !errors.Is(err, ErrUnknownExport) && !errors.Is(err, ErrExportRefused) {
		c.log.Warn("nbd: export lookup failed", "export", name, "err", err)
	}
	return exp, info, err
}

// release tells the catalog, if it wants to know, that the server is done
// with the export name that lookup returned, and whether a transmission
// used it.
func (s *Server) release(name string, transmitted bool) {
	if r, ok := s.cat.(Releaser); ok {
		r.Release(name, transmitted)
	}
}

// lookupReply is the error reply to an option whose export lookup failed.
func lookupReply(err error) uint32 {
	if errors.Is(err, ErrExportRefused) && !errors.Is(err, ErrUnknownExport) {
		return repErrPolicy
	}
	return repErrUnknown
}

// lookupMessage is the text sent with lookupReply.
func lookupMessage(name string, err error) string {
	switch {
	case errors.Is(err, ErrUnknownExport):
		return fmt.Sprintf("unknown export %q", name)
	case errors.Is(err, ErrExportRefused):
		msg := err.Error()
		if _, after, ok := strings.Cut(msg, ErrExportRefused.Error()+": "); ok {
			msg = after
		}
		if len(msg) > maxStringLen {
			msg = msg[:maxStringLen]
		}
		return msg
	}
	return fmt.Sprintf("export %q is not available", name)
}

// optReply writes one option reply whose data is the concatenation of parts.
func (c *conn) optReply(opt, typ uint32, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	var h [optRepHeaderSize]byte
	putOptReplyHeader(h[:], opt, typ, uint32(n))
	if _, err := c.bw.Write(h[:]); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := c.bw.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// optError writes an error reply carrying msg for a human.
func (c *conn) optError(opt, typ uint32, msg string) error {
	c.log.Debug("nbd: option refused", "option", opt, "reply", typ&^repErrorBit, "msg", msg)
	return c.optReply(opt, typ, []byte(msg))
}

// parseInfoRequest decodes NBD_OPT_INFO/GO data: name length (4), name,
// count (2), count info types (2 each), nothing after.
func parseInfoRequest(data []byte) (name string, infos []uint16, ok bool) {
	if len(data) < 6 {
		return "", nil, false
	}
	n := uint64(binary.BigEndian.Uint32(data[0:4]))
	if n > uint64(len(data)-6) {
		return "", nil, false
	}
	name = string(data[4 : 4+n])
	rest := data[4+n:]
	count := int(binary.BigEndian.Uint16(rest[0:2]))
	rest = rest[2:]
	if len(rest) != 2*count {
		return "", nil, false
	}
	infos = make([]uint16, count)
	for i := range infos {
		infos[i] = binary.BigEndian.Uint16(rest[2*i:])
	}
	return name, infos, true
}

// transmissionFlags are the flags advertised for an export. Read-only
// exports advertise neither FUA, TRIM nor WRITE_ZEROES; DF needs structured
// replies.
func transmissionFlags(info ExportInfo, structured bool) uint16 {
	f := tflagHasFlags | tflagSendFlush | tflagSendCache | tflagCanMultiConn
	if info.ReadOnly {
		f |= tflagReadOnly
	} else {
		f |= tflagSendFUA | tflagSendTrim | tflagSendWriteZeroes
	}
	if structured {
		f |= tflagSendDF
	}
	return f
}

// blockSizes returns the NBD_INFO_BLOCK_SIZE constraints: any alignment,
// the export's preferred size (a power of two in [512, 2 MiB], else 4096,
// never above the maximum), and maxPayload as the maximum.
func blockSizes(info ExportInfo, maxPayload int) (minSize, pref, maxSize uint32) {
	pref = info.PreferredBlockSize
	if pref < 512 || pref > 2<<20 || pref&(pref-1) != 0 {
		pref = 4096
	}
	maxSize = uint32(maxPayload)
	for pref > maxSize {
		pref >>= 1
	}
	return 1, pref, maxSize
}
