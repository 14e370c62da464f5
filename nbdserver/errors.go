package nbdserver

import (
	"errors"
	"fmt"
)

// Errors callers see or return.
var (
	// ErrUnknownExport is returned (wrapped) by Catalog.Lookup for an unknown
	// name; the server answers NBD_REP_ERR_UNKNOWN (or closes the connection
	// for NBD_OPT_EXPORT_NAME, which cannot carry an error).
	ErrUnknownExport = errors.New("nbdserver: unknown export")

	// ErrExportRefused is returned (wrapped) by Catalog.Lookup for an
	// export that exists but is not served now, for a reason the client
	// should read (e.g. another server holds it): the server answers
	// NBD_REP_ERR_POLICY carrying the error's text after this prefix (or
	// closes the connection for NBD_OPT_EXPORT_NAME).
	ErrExportRefused = errors.New("nbdserver: export refused")

	// ErrNoSpace may be wrapped by errors from Export methods; the client
	// then gets NBD_ENOSPC instead of NBD_EIO.
	ErrNoSpace = errors.New("nbdserver: no space left on export")

	// ErrReadOnly may be wrapped by errors from Export methods that refuse to
	// modify the export; the client then gets NBD_EPERM instead of NBD_EIO.
	ErrReadOnly = errors.New("nbdserver: export is read-only")

	// ErrServerClosed is returned by Server.Serve once Server.Shutdown has
	// been called.
	ErrServerClosed = errors.New("nbdserver: server closed")
)

// Errors that end one connection; never returned to callers of the package.
var (
	errShortRequest       = errors.New("nbdserver: short request header")
	errBadRequestMagic    = errors.New("nbdserver: bad request magic")
	errBadOptionMagic     = errors.New("nbdserver: bad option magic")
	errOptionTooLong      = errors.New("nbdserver: option data too long")
	errUnknownClientFlags = errors.New("nbdserver: unknown client flags")
	errPayloadTooLarge    = errors.New("nbdserver: write payload too large to skip")
	errAbort              = errors.New("nbdserver: client aborted negotiation")
	errDisconnect         = errors.New("nbdserver: client disconnected")
	errExportNameRefused  = errors.New("nbdserver: export refused after NBD_OPT_EXPORT_NAME")
	errShuttingDown       = errors.New("nbdserver: server shutting down")
	errStopExtents        = errors.New("nbdserver: extent limit reached")
	errBadExtent          = errors.New("nbdserver: export reported an invalid extent")
	errTLSRequired        = errors.New("nbdserver: NBD_OPT_EXPORT_NAME before STARTTLS while TLS is required")
	errNotAuthorized      = errors.New("nbdserver: NBD_OPT_EXPORT_NAME from a client not authorized")
	errEarlyTLSData       = errors.New("nbdserver: client sent data after NBD_OPT_STARTTLS before its reply")
	errTLSHandshake       = errors.New("nbdserver: TLS handshake failed")
	errNoBitmaps          = errors.New("nbdserver: export has no dirty bitmaps")
)

// errnoFor maps an error returned by an Export method to an NBD error value:
// ENOSPC for ErrNoSpace, EPERM for ErrReadOnly, EIO for everything else.
func errnoFor(err error) uint32 {
	switch {
	case errors.Is(err, ErrNoSpace):
		return errnoNOSPC
	case errors.Is(err, ErrReadOnly):
		return errnoPERM
	default:
		return errnoIO
	}
}

// errnoName names an NBD error value for messages and logs.
func errnoName(errno uint32) string {
	switch errno {
	case errnoPERM:
		return "EPERM"
	case errnoIO:
		return "EIO"
	case errnoINVAL:
		return "EINVAL"
	case errnoNOSPC:
		return "ENOSPC"
	case errnoOVERFLOW:
		return "EOVERFLOW"
	default:
		return fmt.Sprintf("errno %d", errno)
	}
}
