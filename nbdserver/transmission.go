package nbdserver

import (
	"io"
	"time"
)

// transmit reads requests and hands each to a worker goroutine until the
// client sends NBD_CMD_DISC (errDisconnect), the server shuts down
// (errShuttingDown or a deadline error), or the stream breaks. The caller
// waits for the workers.
//
// Only NBD_CMD_WRITE carries a payload; it is read completely before the
// request is dispatched, so the stream stays in sync whatever the request's
// fate. Every other request, known or not, is a bare header.
func (c *conn) transmit(s *session) error {
	var hdr [requestSize]byte
	maxPayload := uint32(c.srv.opts.MaxPayload)
	for {
		if c.srv.closing.Load() {
			return errShuttingDown
		}
		c.rd.start = c.rd.n - int64(c.br.Buffered())
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return err
		}
		req, err := parseRequest(hdr[:])
		if err != nil {
			return err
		}
		if req.typ == cmdDisc {
			return errDisconnect
		}
		if c.srv.opts.Observe != nil {
			req.start = time.Now()
		}
		if err := c.dispatch(s, req, maxPayload); err != nil {
			return err
		}
	}
}

// dispatch answers an invalid request at once, or reserves room under the
// connection's limits and the process's memory budget and starts a worker.
func (c *conn) dispatch(s *session, req request, maxPayload uint32) error {
	errno, msg := checkRequest(s, req, maxPayload)
	if req.typ == cmdWrite {
		return c.dispatchWrite(s, req, maxPayload, errno, msg)
	}
	if errno != 0 {
		c.w.error(req.cookie, s.structured, errno, msg)
		c.observe(s, req, invalidRequest(msg))
		return nil
	}
	if req.typ == cmdCache {
		// A valid hint; nothing to prefetch ahead of the export's own cache.
		c.w.simple(req.cookie, 0)
		c.observe(s, req, nil)
		return nil
	}
	var cost int64
	var buf *[]byte
	if req.typ == cmdRead {
		cost = int64(req.length)
	}
	c.lim.acquire(cost)
	if err := c.srv.opts.Budget.AcquireRequest(c.ctx, cost); err != nil {
		c.lim.release(cost)
		return err
	}
	if req.typ == cmdRead {
		buf = getBuf(int(req.length))
	}
	c.inflight.Add(1)
	go c.work(s, req, buf, cost)
	return nil
}

// dispatchWrite reads a WRITE payload, then starts its worker or, for an
// invalid request, answers it. A payload over twice the maximum is not
// worth skipping: the connection is dropped.
func (c *conn) dispatchWrite(s *session, req request, maxPayload, errno uint32, msg string) error {
	n := int64(req.length)
	if errno != 0 {
		if uint64(req.length) > 2*uint64(maxPayload) {
			return errPayloadTooLarge
		}
		if _, err := io.CopyN(io.Discard, c.br, n); err != nil {
			return err
		}
		c.w.error(req.cookie, s.structured, errno, msg)
		c.observe(s, req, invalidRequest(msg))
		return nil
	}
	c.lim.acquire(n)
	if err := c.srv.opts.Budget.AcquireRequest(c.ctx, n); err != nil {
		c.lim.release(n)
		return err
	}
	buf := getBuf(int(n))
	if _, err := io.ReadFull(c.br, *buf); err != nil {
		putBuf(buf)
		c.srv.opts.Budget.ReleaseRequest(n)
		c.lim.release(n)
		return err
	}
	c.inflight.Add(1)
	go c.work(s, req, buf, n)
	return nil
}

// work serves one valid request against the export and replies.
func (c *conn) work(s *session, req request, buf *[]byte, cost int64) {
	defer c.inflight.Done()
	defer c.lim.release(cost)
	defer c.srv.opts.Budget.ReleaseRequest(cost)
	off, n := int64(req.offset), int64(req.length)
	fua := req.flags&cmdFlagFUA != 0
	var err error
	switch req.typ {
	case cmdRead:
		// The reply header goes out only once the data is known.
		if err = s.exp.ReadAt(*buf, off); err == nil {
			c.w.read(req.cookie, s.structured, req.offset, *buf)
		}
		putBuf(buf)
	case cmdWrite:
		if k, ok := s.exp.(PayloadKeeper); ok {
			err = k.WriteAtKeep(*buf, off, fua, func() { putBuf(buf) })
		} else {
			err = s.exp.WriteAt(*buf, off, fua)
			putBuf(buf)
		}
	case cmdFlush:
		err = s.exp.Flush()
	case cmdTrim:
		err = s.exp.Zero(off, n, true, fua)
	case cmdWriteZeroes:
		err = s.exp.Zero(off, n, req.flags&cmdFlagNoHole == 0, fua)
	case cmdBlockStatus:
		err = c.blockStatus(s, req)
	}
	if err != nil {
		errno := errnoFor(err)
		c.log.Error("nbd: export request failed", "export", s.name, "op", cmdName(req.typ),
			"offset", req.offset, "length", req.length, "errno", errnoName(errno), "err", err)
		c.w.error(req.cookie, s.structured, errno, cmdName(req.typ)+" failed: "+errnoName(errno))
		c.observe(s, req, err)
		return
	}
	if req.typ != cmdRead && req.typ != cmdBlockStatus {
		c.w.simple(req.cookie, 0)
	}
	c.observe(s, req, nil)
}

// checkRequest validates a request against the session before any export
// call, returning the NBD error and a message for the client, or 0.
//
// Order: flags (EINVAL), read-only (EPERM), size limit (EINVAL, or
// EOVERFLOW for structured reads), range (ENOSPC for WRITE and
// WRITE_ZEROES, EINVAL otherwise, as the spec's error section says).
// Zero-length requests are valid, except BLOCK_STATUS, which must make
// progress.
func checkRequest(s *session, req request, maxPayload uint32) (uint32, string) {
	ro := s.info.ReadOnly
	in := inRange(req.offset, req.length, s.size)
	switch req.typ {
	case cmdRead:
		switch {
		case req.flags&^(cmdFlagFUA|cmdFlagDF) != 0, req.flags&cmdFlagDF != 0 && !s.structured:
			return errnoINVAL, "unsupported flags for NBD_CMD_READ"
		case req.length > maxPayload && s.structured:
			return errnoOVERFLOW, "read larger than the maximum block size"
		case req.length > maxPayload:
			return errnoINVAL, "read larger than the maximum block size"
		case !in:
			return errnoINVAL, "read beyond the end of the export"
		}
	case cmdWrite:
		switch {
		case req.flags&^cmdFlagFUA != 0:
			return errnoINVAL, "unsupported flags for NBD_CMD_WRITE"
		case ro:
			return errnoPERM, "export is read-only"
		case req.length > maxPayload:
			return errnoINVAL, "write larger than the maximum block size"
		case !in:
			return errnoNOSPC, "write beyond the end of the export"
		}
	case cmdFlush:
		if req.flags&^cmdFlagFUA != 0 {
			return errnoINVAL, "unsupported flags for NBD_CMD_FLUSH"
		}
	case cmdTrim:
		switch {
		case req.flags&^cmdFlagFUA != 0:
			return errnoINVAL, "unsupported flags for NBD_CMD_TRIM"
		case ro:
			return errnoPERM, "export is read-only"
		case !in:
			return errnoINVAL, "trim beyond the end of the export"
		}
	case cmdWriteZeroes:
		switch {
		case req.flags&^(cmdFlagFUA|cmdFlagNoHole) != 0:
			// Includes NBD_CMD_FLAG_FAST_ZERO, which is not advertised.
			return errnoINVAL, "unsupported flags for NBD_CMD_WRITE_ZEROES"
		case ro:
			return errnoPERM, "export is read-only"
		case !in:
			return errnoNOSPC, "write zeroes beyond the end of the export"
		}
	case cmdCache:
		switch {
		case req.flags&^cmdFlagFUA != 0:
			return errnoINVAL, "unsupported flags for NBD_CMD_CACHE"
		case req.length > maxPayload:
			return errnoINVAL, "cache larger than the maximum block size"
		case !in:
			return errnoINVAL, "cache beyond the end of the export"
		}
	case cmdBlockStatus:
		switch {
		case req.flags&^(cmdFlagFUA|cmdFlagReqOne) != 0:
			return errnoINVAL, "unsupported flags for NBD_CMD_BLOCK_STATUS"
		case len(s.meta) == 0:
			return errnoINVAL, "no metadata context was negotiated"
		case req.length == 0:
			return errnoINVAL, "block status of zero length"
		case !in:
			return errnoINVAL, "block status beyond the end of the export"
		}
	default:
		return errnoINVAL, "unknown command"
	}
	return 0, ""
}

// cmdName names a command for logs and messages.
func cmdName(typ uint16) string {
	switch typ {
	case cmdRead:
		return "read"
	case cmdWrite:
		return "write"
	case cmdDisc:
		return "disconnect"
	case cmdFlush:
		return "flush"
	case cmdTrim:
		return "trim"
	case cmdCache:
		return "cache"
	case cmdWriteZeroes:
		return "write zeroes"
	case cmdBlockStatus:
		return "block status"
	default:
		return "unknown"
	}
}
