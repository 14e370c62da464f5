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

// adminTimeout bounds a request to the process serving a volume.
const adminTimeout = time.Minute

var snapshotCmd = &command{
	name:    "snapshot",
	args:    "SUBCOMMAND [ARGS]",
	summary: "create, list, remove and roll back to snapshots",
	help: `
A snapshot is a read-only, point-in-time image of a volume, named
VOLUME@SNAPSHOT; snapshot names follow the rules of volume names. Taking one
costs one small record, whatever the size of the volume. Snapshots can be
taken and removed while the volume is served: the command then asks the
serving process through its admin socket. "hlfs serve" exports snapshots
read-only, and "hlfs clone" makes a new writable volume from one.`,
	subs: []*command{snapshotCreateCmd, snapshotLsCmd, snapshotRmCmd, snapshotRollbackCmd},
}

// onVolume runs an operation on volume vol where vol is open: in the
// process serving it, by sending req to that process's admin socket, or,
// when nobody serves vol, here, by calling local on the volume opened for the
// purpose. The errors of local and of opening come back unchanged, for the
// caller to word (snapshotError); the serving process words its own, which
// come back as *admin.ServerError.
func (c *cli) onVolume(st objstore.Store, vol string, req admin.Request, local func(*lfs.Volume) error) error {
	for attempt := 1; ; attempt++ {
		v, err := lfs.Open(st, vol, lfs.Options{Logger: c.warnLogger()})
		var inUse *lfs.InUseError
		if errors.As(err, &inUse) {
			err := c.callOwner(vol, inUse.Owner, req)
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

// callOwner sends req to owner, the live process serving vol.
func (c *cli) callOwner(vol string, owner lfs.OwnerRecord, req admin.Request) error {
	host, _ := os.Hostname()
	switch {
	case owner.Admin == "":
		return fmt.Errorf("%s is in use by pid %d on host %s, which has no admin socket to take snapshot requests; stop it first",
			vol, owner.PID, owner.Host)
	case owner.Host != host:
		return fmt.Errorf("%s is served by pid %d on host %s; its admin socket is only reachable there, so run this command on %s",
			vol, owner.PID, owner.Host, owner.Host)
	}
	err := admin.Call(owner.Admin, req, adminTimeout)
	var se *admin.ServerError
	switch {
	case err == nil, errors.As(err, &se):
		return err
	case errors.Is(err, admin.ErrTimeout):
		return fmt.Errorf("pid %d serving %s did not answer within %v on %s; the request may still complete (check with 'hlfs snapshot ls %s')",
			owner.PID, vol, adminTimeout, owner.Admin, vol)
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
