package hdfsbackend

import (
	"errors"
	"os"
	"time"

	"github.com/colinmarc/hdfs/v2"
)

// probeLength is a length no object reaches. A truncate to it is refused
// (HadoopIllegalArgumentException) only after the NameNode checked the
// file's lease: see Persist.
const probeLength = 1 << 62

// Persist implements objstore.Store. A closed HDFS file is durable, so
// Persist only has work to do for a file still open ("under construction"),
// typically the last object of a writer that crashed. The library has no
// recoverLease call, so Persist asks for a truncate to an impossible length,
// a call the NameNode answers only after checking the file's lease:
//
//   - a closed file: the length check refuses the truncate; nil.
//   - an open file whose writer stopped renewing its lease for longer than
//     the lease soft limit (60 s by default): the NameNode starts lease
//     recovery, which closes the file at the length its DataNodes agree on
//     (the bytes that reached them, so possibly more than Open showed), and
//     answers RecoveryInProgressException; Persist asks again until the file
//     is closed.
//   - an open file whose writer is alive (AlreadyBeingCreatedException):
//     Persist waits in case it is a crashed writer inside the soft limit and
//     returns ErrLeaseHeld after Options.LeaseRecoveryTimeout.
//   - an object this Store itself is still writing: nil without waiting;
//     only its completed blocks are durable (close it to make the rest so).
//
// The truncate never changes a file: it is refused in every case.
func (s *Store) Persist(name string) error {
	p, err := s.path(name, false)
	if err != nil {
		return err
	}
	b := newBackoff(100*time.Millisecond, 2*time.Second, s.opts.LeaseRecoveryTimeout)
	var lastHolder string
	for {
		var state string
		_, err := s.run("persist", name, true, false, func(c *hdfs.Client) error {
			fi, err := c.Stat(p)
			if err != nil {
				return err
			}
			if fi.IsDir() {
				return os.ErrNotExist
			}
			_, err = c.Truncate(p, probeLength)
			switch {
			case err == nil:
				// A NameNode that accepted the impossible length: nothing
				// more to learn from it.
				state = "closed"
				return nil
			case errors.Is(err, os.ErrInvalid):
				state = "closed"
				return nil
			case remoteException(err) == exRecoveryInProgress:
				state = "recovering"
				return nil
			case remoteException(err) == exAlreadyBeingCreated:
				state = "held"
				lastHolder = describe(err)
				return nil
			case remoteException(err) == "org.apache.hadoop.ipc.RpcNoSuchMethodException":
				// A NameNode without truncate (before Hadoop 2.7).
				state = "closed"
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
		switch {
		case state == "closed":
			return nil
		case state == "held" && s.writing(name):
			return nil
		}
		d, ok := b.pause()
		if !ok {
			if state == "recovering" {
				return &opError{op: "persist", name: name, cause: errors.New("lease recovery still in progress after " + s.opts.LeaseRecoveryTimeout.String())}
			}
			return &opError{op: "persist", name: name, kind: ErrLeaseHeld, cause: errors.New(lastHolder)}
		}
		s.log.Debug("hdfsbackend: persist waits for lease recovery", "object", name, "state", state)
		s.sleep(d)
	}
}
