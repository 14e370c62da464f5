// Package nbdserver serves block devices over the NBD protocol (fixed newstyle
// handshake, structured replies, base:allocation and qemu:dirty-bitmap
// block status) on TCP and Unix-domain sockets.
//
// It uses the wire constants of github.com/pojntfx/go-nbd/pkg/protocol but
// implements the handshake and transmission phase itself: go-nbd's server is
// serial per connection, advertises no FLUSH/FUA/TRIM/WRITE_ZEROES and desyncs
// on TRIM.
//
// # Use
//
//	srv := nbdserver.New(catalog, nbdserver.Options{Logger: log})
//	go srv.Serve(tcpListener)  // and/or a Unix listener
//	...
//	err := srv.Shutdown(ctx)   // then flush and close the exports
//
// With TLS (x509 only: Go's crypto/tls has no PSK):
//
//	creds, err := nbdserver.LoadX509Dir("/etc/pki/qemu", verifyPeer)
//	srv := nbdserver.New(catalog, nbdserver.Options{
//		TLS: &nbdserver.TLSOptions{Config: creds.Config(), Mode: nbdserver.TLSRequire}})
//	go srv.Serve(tcpListener)                       // TLS required
//	go srv.ServeMode(unixListener, nbdserver.TLSOff) // local clients in clear
//	...
//	creds.Reload() // on SIGHUP: new handshakes use the new files
//
// Exports are reached through a Catalog; each Export is called concurrently
// from many goroutines (see Export for the contract the server keeps). A
// Catalog that opens exports on demand implements Releaser as well: every
// successful Lookup is paired with one Release once the server is done with
// the export (at once for INFO and meta-context options, at the end of the
// connection for GO and EXPORT_NAME), so it can close what nobody uses.
// Lookup errors wrapping ErrExportRefused reach the client as
// NBD_REP_ERR_POLICY with their text ("in use by ...").
//
// # Protocol coverage
//
// Handshake: fixed newstyle only, NBD_FLAG_NO_ZEROES honoured. Options:
// EXPORT_NAME, INFO and GO (NBD_INFO_EXPORT; NAME and DESCRIPTION when
// requested; BLOCK_SIZE always: minimum 1, preferred from ExportInfo,
// maximum Options.MaxPayload), LIST (one NBD_REP_SERVER per export), ABORT,
// STRUCTURED_REPLY, LIST_META_CONTEXT and SET_META_CONTEXT ("base:allocation",
// and "qemu:dirty-bitmap:NAME" for each bitmap of an export that is a
// BitmapExport; LIST also answers the queries "base:", "qemu:" and
// "qemu:dirty-bitmap:" and, with no query, lists every context; at most 64
// selected at once). STARTTLS when Options.TLS is set (else
// NBD_REP_ERR_UNSUP). Every other option gets NBD_REP_ERR_UNSUP.
// Unknown client flags, a wrong option magic or an option longer than 64 KiB
// close the connection.
//
// # TLS
//
// A listener's TLSMode is one of the spec's three: TLSRequire (FORCEDTLS:
// before STARTTLS every option but STARTTLS and ABORT gets
// NBD_REP_ERR_TLS_REQD, NBD_OPT_EXPORT_NAME closes the connection), TLSOn
// (SELECTIVETLS with no TLS-only export: clear or TLS at the client's
// choice) and TLSOff (NOTLS: STARTTLS gets NBD_REP_ERR_POLICY). STARTTLS
// is answered with NBD_REP_ACK, then the TLS handshake runs on the socket
// (TLS 1.2 at least, within the handshake timeout); a failed handshake
// closes the connection. After it every option negotiated before is
// forgotten (structured replies, meta contexts): NBD's rule, broken by
// nbdkit in CVE-2021-3716. A second STARTTLS, or STARTTLS with data, gets
// NBD_REP_ERR_INVALID; bytes sent after STARTTLS before its reply close
// the connection. TLSOptions.Authorize decides on the client's
// certificate; a refused client gets NBD_REP_ERR_POLICY with the reason
// to every option. X509Dir reads a credential directory in QEMU's layout
// and DNList a list of allowed client distinguished names.
//
// # Limits
//
// Options.HandshakeTimeout (default 30 s) bounds the wait for the first
// option, the silence between two options and the reading and answering of
// one option, not the whole negotiation: a client probing hundreds of
// exports in turn (nbdinfo --list) is served, one that stops talking is
// dropped.
// At most Options.MaxConns connections are served at once (default 128).
// At most Options.MaxHandshakesPerAddr TCP connections from one IP
// address negotiate at once (default 16); more wait, not yet greeted, for
// their turn. A connection over MaxConns, or that waited longer than the
// handshake timeout, gets the greeting and NBD_REP_ERR_POLICY ("too many
// connections ...") to its options: QEMU prints the message; libnbd 1.14
// prints "Operation not supported" and shows the message with
// LIBNBD_DEBUG=1. See admission.go for the bounds on waiting and refused
// connections.
//
// Transmission flags: HAS_FLAGS, SEND_FLUSH, SEND_CACHE, CAN_MULTI_CONN,
// SEND_DF with structured replies, and SEND_FUA, SEND_TRIM and
// SEND_WRITE_ZEROES unless ExportInfo.ReadOnly (then READ_ONLY, and writes,
// trims and zeroes get EPERM).
//
// Commands: READ, WRITE (FUA), FLUSH, TRIM (Export.Zero with punch), CACHE
// (validated, no effect), WRITE_ZEROES (punch unless NO_HOLE), BLOCK_STATUS
// (one chunk per selected context, in the order selected, the last flagged
// done; base:allocation: holes are HOLE|ZERO, data 0; a dirty bitmap:
// NBD_STATE_DIRTY (bit 0) where changed; REQ_ONE honoured; descriptors
// nonzero, summing to at most the request's length; at most 8192 per
// chunk) and DISC. Unknown commands and flags get
// EINVAL. Ranges past the end get ENOSPC for WRITE and WRITE_ZEROES and
// EINVAL otherwise (as the spec's error section says; TRIM included).
// Export errors map to EIO, or ENOSPC / EPERM when they wrap ErrNoSpace /
// ErrReadOnly, and are logged. With structured replies, errors carry a
// message in an NBD_REPLY_TYPE_ERROR chunk.
//
// # Observing
//
// Options.Observe, when set, receives a RequestEvent for every request of
// the transmission phase (export, op, length, duration, error) once its
// reply is sent or it failed, on the goroutine that served it;
// Server.Connections counts the connections served. internal/metrics turns
// both into Prometheus metrics.
// hlfs's own option: OptHandOff (handoff.go), by which one hlfs serve asks
// another to hand a volume over during a live migration, answered through
// Options.HandOff; RequestHandOff is its client side. Other servers answer
// it NBD_REP_ERR_UNSUP.
//
// # Concurrency
//
// Each connection has one reading goroutine and one goroutine per request
// in flight, bounded by Options.MaxRequestsPerConn and
// Options.MaxInFlightBytes, and across connections by Options.Budget (READ
// and WRITE payloads count from the request header to the reply, and a
// WRITE buffer an export keeps, PayloadKeeper, is the export's to count
// from then on; a
// connection whose next request does not fit stops reading until it does);
// replies go out in completion order, each written
// whole under a per-connection lock and flushed once no other reply is
// queued. A WRITE payload is read completely before its request runs. A READ
// reply header is sent only after the data has been read. Protocol
// violations close only the offending connection.
//
// A Server is safe for concurrent use, as are X509Dir and DNList;
// Shutdown lets requests already
// received (or partly received) finish and reply, and returns only when no
// Export method is running.
package nbdserver
