package nbdserver

import (
	"context"
	"crypto/tls"
	"fmt"
)

// optStartTLS answers NBD_OPT_STARTTLS. In a TLS mode, before TLS, it
// replies NBD_REP_ACK and runs the server side of the TLS handshake on the
// socket; from then on the connection reads and writes through the TLS
// session, and every option negotiated before is forgotten (the spec's
// rule, and the CVE-2021-3716 lesson: a man in the middle could otherwise
// have negotiated structured replies or meta contexts in clear for the
// client). A failed handshake ends the connection: after the ACK there is
// no way back to clear text.
func (c *conn) optStartTLS(neg *negotiation, data []byte) error {
	switch {
	case c.tc != nil:
		return c.optError(optStartTLS, repErrInvalid, "TLS is already negotiated")
	case c.srv.opts.TLS == nil:
		return c.optError(optStartTLS, repErrUnsup, "TLS is not configured on this server")
	case c.mode == TLSOff:
		return c.optError(optStartTLS, repErrPolicy, "TLS is off on this socket")
	case len(data) != 0:
		return c.optError(optStartTLS, repErrInvalid, "NBD_OPT_STARTTLS takes no data")
	case c.br.Buffered() != 0:
		// The client may send nothing before our reply; whatever it sent
		// would otherwise be lost under the TLS session.
		return errEarlyTLSData
	}
	if err := c.optReply(optStartTLS, repAck, nil); err != nil {
		return err
	}
	if err := c.bw.Flush(); err != nil {
		return err
	}
	// The socket's handshake deadline bounds the TLS handshake too.
	tc := tls.Server(c.nc, c.srv.tlsConfig)
	if err := tc.HandshakeContext(context.Background()); err != nil {
		return fmt.Errorf("%w: %w", errTLSHandshake, err)
	}
	c.tc, c.src = tc, tc
	c.br.Reset(&c.rd)
	c.bw.Reset(tc)
	*neg = negotiation{noZeroes: neg.noZeroes}
	cs := tc.ConnectionState()
	peer := ""
	if len(cs.PeerCertificates) > 0 {
		peer = cs.PeerCertificates[0].Subject.String()
	}
	if auth := c.srv.opts.TLS.Authorize; auth != nil {
		if err := auth(&cs); err != nil {
			c.authErr = err
			c.log.Warn("nbd: TLS client not authorized", "peer", peer, "err", err)
		}
	}
	c.log.Debug("nbd: TLS negotiated", "version", tls.VersionName(cs.Version),
		"cipher", tls.CipherSuiteName(cs.CipherSuite), "peer", peer)
	return nil
}

// serverTLSConfig returns the configuration the server upgrades
// connections with: cfg with at least TLS 1.2, also for the configurations
// its GetConfigForClient hands out.
func serverTLSConfig(cfg *tls.Config) *tls.Config {
	cfg = cfg.Clone()
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	if get := cfg.GetConfigForClient; get != nil {
		cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := get(hello)
			if err == nil && c != nil && c.MinVersion < tls.VersionTLS12 {
				c = c.Clone()
				c.MinVersion = tls.VersionTLS12
			}
			return c, err
		}
	}
	return cfg
}
