package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hlfs/hlfs/internal/admin"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/lfs"
)

// adminTimeout bounds a snapshot request to the process serving a volume.
const adminTimeout = time.Minute

// adminOp is how a command treats one kind of admin request.
type adminOp struct {
	kind string // what a server without an admin socket cannot take: "snapshot requests"
	// timeout bounds the wait for the reply; 0: as long as the request
	// takes, or until ^C.
	timeout time.Duration
	check   string // the command that shows whether it happened, before VOLUME
}

// adminOps are the admin requests commands send.
var adminOps = map[string]adminOp{
	admin.OpSnapshotCreate: {"snapshot requests", adminTimeout, "hlfs snapshot ls"},
	admin.OpSnapshotRemove: {"snapshot requests", adminTimeout, "hlfs snapshot ls"},
	admin.OpGC:             {"gc requests", 0, "hlfs du"},
	admin.OpScrub:          {"scrub requests", 0, "hlfs scrub"},
}

// onVolume runs an operation on volume vol where vol is open: in the
// process serving it, by sending req to that process's admin socket, or,
// when nobody serves vol, here, by calling local on the volume opened for the
// purpose. A request with a result (gc) has it decoded into result, which
// is nil for the others; local sets it itself. The errors of local and of
// opening come back unchanged, for the caller to word (snapshotError); the
// serving process words its own, which come back as *admin.ServerError.
func (c *cli) onVolume(st objstore.Store, vol string, req admin.Request, result any, local func(*lfs.Volume) error) error {
	for attempt := 1; ; attempt++ {
		v, err := lfs.Open(st, vol, lfs.Options{Logger: c.warnLogger()})
		var inUse *lfs.InUseError
		if errors.As(err, &inUse) {
			err := c.callOwner(vol, inUse.Owner, req, result)
			var unreachable *unreachableError
			if errors.As(err, &unreachable) && attempt < 3 {
				// The server may have stopped since Open looked: look again.
				time.Sleep(100 * time.Millisecond * time.Duration(attempt))
				continue
			}
			return err
		}
		if err != nil {
			return err
		}
		err = local(v)
		if cerr := v.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing %s: %w", vol, cerr)
		}
		return err
	}
}

// unreachableError is callOwner's error when the admin socket the owner
// lock names does not answer.
type unreachableError struct{ msg string }

func (e *unreachableError) Error() string { return e.msg }

// callOwner sends req to owner, the live process serving vol, and decodes
// the reply's result into result unless it is nil. It stops waiting on ^C.
func (c *cli) callOwner(vol string, owner lfs.OwnerRecord, req admin.Request, result any) error {
	op := adminOps[req.Op]
	host, _ := os.Hostname()
	switch {
	case owner.Admin == "":
		return fmt.Errorf("%s is in use by pid %d on host %s, which has no admin socket to take %s; stop it first",
			vol, owner.PID, owner.Host, op.kind)
	case owner.Host != host:
		return fmt.Errorf("%s is served by pid %d on host %s; its admin socket is only reachable there, so run this command on %s",
			vol, owner.PID, owner.Host, owner.Host)
	}
	err := admin.Call(c.ctx, owner.Admin, req, op.timeout, result)
	var se *admin.ServerError
	switch {
	case err == nil, errors.As(err, &se):
		return err
	case errors.Is(err, admin.ErrTimeout):
		return fmt.Errorf("pid %d serving %s did not answer within %v on %s; the request may still complete (check with '%s %s')",
			owner.PID, vol, op.timeout, owner.Admin, op.check, vol)
	case c.ctx.Err() != nil:
		return fmt.Errorf("interrupted: pid %d serving %s may still complete the request (check with '%s %s')",
			owner.PID, vol, op.check, vol)
	}
	return &unreachableError{fmt.Sprintf("%s is served by pid %d, whose admin socket %s does not answer: %s",
		vol, owner.PID, owner.Admin, rootCause(err))}
}

// rootCause returns the innermost error's message: "connection refused"
// rather than the whole chain.
func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}
