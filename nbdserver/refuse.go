package nbdserver

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"time"
)

// refuse tells a client over a connection limit (see admission.go) why it
// is not served, as
// far as the protocol lets a server say so: it sends the greeting, reads
// the client flags, and answers each option with NBD_REP_ERR_POLICY and
// why (an NBD_OPT_ABORT gets its ACK, NBD_OPT_EXPORT_NAME, which cannot
// carry an error, a hard disconnect), until the client gives up, it sent
// refuseMaxOptions options or refuseTimeout passed. Clients show the
// message of the first error: libnbd as "server replied with error to
// opt_go request", QEMU as "server reported: ...". A client that wanted
// TLS sees its STARTTLS refused the same way; no TLS session is set up for
// a connection that is refused anyway.
//
// Refusing costs one goroutine and one socket for at most refuseTimeout,
// and at most maxRefusing connections (maxRefusingPerAddr per address)
// are refused at once.
func (s *Server) refuse(nc net.Conn, why string) {
	defer s.handlers.Done()
	defer func() {
		nc.Close()
		s.mu.Lock()
		addr := s.mu.refusing[nc]
		delete(s.mu.refusing, nc)
		if addr != "" {
			s.decAddrLocked(addr, addrCount{refusing: 1})
		}
		s.mu.Unlock()
	}()
	nc.SetDeadline(time.Now().Add(refuseTimeout))
	br := bufio.NewReaderSize(nc, 4096)
	var b [optRepHeaderSize]byte
	putGreeting(b[:])
	if _, err := nc.Write(b[:greetingSize]); err != nil {
		return
	}
	if _, err := io.ReadFull(br, b[:4]); err != nil {
		return
	}
	msg := []byte("hlfs: " + why)
	for range refuseMaxOptions {
		if _, err := io.ReadFull(br, b[:optHeaderSize]); err != nil {
			return
		}
		opt := binary.BigEndian.Uint32(b[8:12])
		n := binary.BigEndian.Uint32(b[12:16])
		if binary.BigEndian.Uint64(b[0:8]) != magicOption || n > maxOptionLen || opt == optExportName {
			return
		}
		if _, err := br.Discard(int(n)); err != nil {
			return
		}
		typ, data := repErrPolicy, msg
		if opt == optAbort {
			typ, data = repAck, nil
		}
		putOptReplyHeader(b[:], opt, typ, uint32(len(data)))
		if _, err := nc.Write(append(b[:], data...)); err != nil || opt == optAbort {
			return
		}
	}
}
