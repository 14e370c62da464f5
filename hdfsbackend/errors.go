package hdfsbackend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/colinmarc/hdfs/v2"
	"github.com/hlfs/hlfs/internal/objstore"
)

var (
	// ErrUnavailable is wrapped by every error of a call that could not reach
	// the NameNode (refused, reset, timed out). The Store reconnects by
	// itself; the caller may retry later.
	ErrUnavailable = errors.New("hdfsbackend: namenode unreachable")
	// ErrNotReady is wrapped by the error of a call the NameNode refused
	// for now: in safe mode after a restart, standby, or asking for a retry.
	// The call did not happen; the caller may retry later.
	ErrNotReady = errors.New("hdfsbackend: namenode not ready")
	// ErrLeaseHeld is returned by Persist when the object is still open by a
	// live writer (another process renews its lease) after
	// Options.LeaseRecoveryTimeout.
	ErrLeaseHeld = errors.New("hdfsbackend: object is open by a live writer")
	// ErrPipeline is wrapped by the error of a Writer whose DataNode write
	// pipeline failed (a DataNode died or refused the block). The library
	// cannot rebuild the pipeline: the object is lost and the caller
	// writes a new one.
	ErrPipeline = errors.New("hdfsbackend: datanode write pipeline failed")
	// ErrClosed is returned by a Writer or Reader used after Close, and by a
	// Store used after Close.
	ErrClosed = errors.New("hdfsbackend: closed")
)

var errNegativeOffset = errors.New("negative offset")

// IsUnavailable reports whether err came from a call that could not reach
// the NameNode.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// Java exception classes the Store tells apart.
const (
	exAlreadyBeingCreated = "org.apache.hadoop.hdfs.protocol.AlreadyBeingCreatedException"
	exRecoveryInProgress  = "org.apache.hadoop.hdfs.protocol.RecoveryInProgressException"
)

// opError is the one-line error every Store method returns:
// "hdfsbackend: <op> <name>: <reason>". It unwraps to the objstore or
// hdfsbackend sentinel it stands for (kind) and to the library's error.
type opError struct {
	op, name string
	kind     error // objstore.ErrNotExist, ErrUnavailable, ...; may be nil
	cause    error // as returned by the library; may be nil
}

func (e *opError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hdfsbackend: %s %s: ", e.op, e.name)
	switch {
	case e.kind != nil && e.cause != nil:
		fmt.Fprintf(&b, "%s: %s", strings.TrimPrefix(e.kind.Error(), "hdfsbackend: "), describe(e.cause))
	case e.kind != nil:
		b.WriteString(strings.TrimPrefix(e.kind.Error(), "hdfsbackend: "))
	default:
		b.WriteString(describe(e.cause))
	}
	return b.String()
}

func (e *opError) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
		if e.kind == ErrUnavailable || e.kind == ErrPipeline || e.kind == ErrNotReady {
			errs = append(errs, objstore.ErrTransient) // retrying may work
		}
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// describe renders a library error on one line: a NameNode exception as its
// short class name and the first line of its message.
func describe(err error) string {
	var remote hdfs.Error
	if errors.As(err, &remote) {
		class := remote.Exception()
		if i := strings.LastIndexByte(class, '.'); i >= 0 {
			class = class[i+1:]
		}
		msg := remote.Message()
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if msg == "" {
			return fmt.Sprintf("%s (%s)", class, remote.Method())
		}
		return fmt.Sprintf("%s: %s", class, msg)
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		// The library's PathErrors name the absolute HDFS path; the opError
		// already names the object.
		return describe(pe.Err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "connection closed by the peer (" + err.Error() + ")"
	}
	// The Store's own errors wrap objstore sentinels; the opError already
	// says it is the store's.
	return strings.ReplaceAll(strings.TrimPrefix(err.Error(), "objstore: "), "\n", " ")
}

// remoteException returns the Java class of the NameNode exception in err,
// or "".
func remoteException(err error) string {
	var remote hdfs.Error
	if errors.As(err, &remote) {
		return remote.Exception()
	}
	return ""
}

// wrap classifies a library error for op on the object name.
func wrap(op, name string, err error) error {
	if err == nil {
		return nil
	}
	var already *opError
	if errors.As(err, &already) {
		return err
	}
	e := &opError{op: op, name: name, cause: err}
	switch {
	case errors.Is(err, os.ErrNotExist):
		e.kind, e.cause = objstore.ErrNotExist, nil
	case errors.Is(err, os.ErrExist):
		e.kind, e.cause = objstore.ErrExist, nil
	case errors.Is(err, os.ErrPermission):
		// The library keeps no more than the class of the exception.
		e.kind, e.cause = os.ErrPermission, nil
	case isConnErr(err):
		e.kind = ErrUnavailable
	case isRetriableException(remoteException(err)):
		e.kind = ErrNotReady
	}
	return e
}

// isRetriableException reports whether a NameNode exception says "not now":
// a NameNode restarting (safe mode), a standby one, or one asking for a
// retry. The operation did not happen and may work when tried again.
func isRetriableException(class string) bool {
	for _, c := range []string{"SafeModeException", "StandbyException", "RetriableException", "ObserverRetryOnActiveException"} {
		if strings.HasSuffix(class, c) {
			return true
		}
	}
	return false
}

// isConnErr reports whether err is a failure of the connection to the
// NameNode rather than an answer from it. The Store then replaces the
// client, whose connection state is unknown.
func isConnErr(err error) bool {
	if err == nil || remoteException(err) != "" {
		return false
	}
	if notSent(err) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "unexpected sequence number")
}

// wrapIO classifies an error of a Writer or Reader, which talk to the
// NameNode and to DataNodes: a failed NameNode connection (nnConn) is
// ErrUnavailable, a NameNode answer is classified as by wrap, and anything
// else is a DataNode failure, wrapped with dnKind (which may be nil).
func wrapIO(op, name string, err error, nnConn bool, dnKind error) error {
	switch {
	case err == nil:
		return nil
	case nnConn:
		return &opError{op: op, name: name, kind: ErrUnavailable, cause: err}
	case remoteException(err) != "" || hdfs.IsErrReplicating(err) ||
		errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrExist) || errors.Is(err, os.ErrPermission):
		return wrap(op, name, err)
	}
	return &opError{op: op, name: name, kind: dnKind, cause: err}
}

// notSent reports whether err says the request never reached a NameNode:
// the library could not (re)connect. Such a call is safe to repeat on a new
// connection whatever it does.
func notSent(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no available namenodes")
}
