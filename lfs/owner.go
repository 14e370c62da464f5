package lfs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
)

// OwnerRecord is the content of an owner lock object (docs/format.md).
type OwnerRecord struct {
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	PIDStart string    `json:"pid_start"`
	Epoch    uint64    `json:"epoch"`
	Since    time.Time `json:"since"`
	Admin    string    `json:"admin,omitempty"`
	// Renewed is when the owner last confirmed it is alive; LeaseSeconds
	// how long that confirmation holds. A process on another host is taken
	// to be gone once its lease ran out.
	Renewed      time.Time `json:"renewed"`
	LeaseSeconds float64   `json:"lease_seconds"`
	// Token is random per acquisition: a renewal that finds another token
	// in its lock object knows someone else holds the same epoch (a lock
	// removed by hand and taken again) and stops.
	Token string `json:"token,omitempty"`
	// NBD are the URIs the owning process serves NBD on, without an export
	// name: "nbd://HOST:PORT" or "nbd+unix:///?socket=PATH", with the
	// scheme nbds or nbds+unix where it offers TLS. A reader puts the export
	// name in the path ("nbd://HOST:PORT/vm1", "nbd+unix:///vm1?socket=PATH").
	// Empty for a process that serves no NBD, and in locks written before.
	NBD []string `json:"nbd,omitempty"`
}

// DefaultLease is how long an owner's renewal holds when Options.Lease is 0.
const DefaultLease = 30 * time.Second

// ownership is a held owner lock.
type ownership struct {
	st    objstore.Store
	vol   string
	epoch uint64
	rec   OwnerRecord

	// mu guards lastRenew; renewals (store I/O) happen outside it.
	mu        sync.Mutex
	lastRenew time.Time
}

// hostname identifies this host in owner locks: $HLFS_HOSTNAME when set
// (tests simulate a second host with it; containers sharing a hostname
// need it), else the system's hostname.
func hostname() string {
	if h := os.Getenv("HLFS_HOSTNAME"); h != "" {
		return h
	}
	h, _ := os.Hostname()
	return h
}

func ownerObject(vol, state string, epoch uint64) string {
	return path.Join(ownerDir(vol), fmt.Sprintf("%s-%016x", state, epoch))
}

// ownerState lists the lock objects of vol and returns the highest epoch and
// whether it is held.
func ownerState(st objstore.Store, vol string) (epoch uint64, held bool, err error) {
	names, err := st.List(ownerDir(vol))
	if err != nil {
		return 0, false, err
	}
	for _, n := range names {
		state, hex, ok := strings.Cut(n, "-")
		if !ok || (state != "held" && state != "free") {
			continue
		}
		e, perr := strconv.ParseUint(hex, 16, 64)
		if perr != nil {
			continue
		}
		if e > epoch || (e == epoch && state == "held") {
			epoch, held = e, state == "held"
		}
	}
	return epoch, held, nil
}

// liveOwner returns the record of the process holding vol, or nil when the
// volume is free or its holder is provably gone.
func liveOwner(st objstore.Store, vol string) (*OwnerRecord, uint64, error) {
	epoch, held, err := ownerState(st, vol)
	if err != nil || !held {
		return nil, epoch, err
	}
	b, err := readObject(st, ownerObject(vol, "held", epoch))
	if errors.Is(err, objstore.ErrNotExist) {
		return nil, epoch, nil // released or taken over meanwhile
	}
	if err != nil {
		return nil, epoch, err
	}
	var rec OwnerRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		// A torn lock object: its writer died before Close; treat as gone.
		return nil, epoch, nil
	}
	if !processAlive(rec) {
		return nil, epoch, nil
	}
	return &rec, epoch, nil
}

// acquireOwner takes the owner lock of vol or returns an *InUseError.
//
// Epochs only grow: the new epoch is above every epoch in the lock objects
// and in the log's newest segment headers (every writer that acknowledged
// a write created a segment stamped with its epoch). When the log knows a
// higher epoch than the locks, the lock history is gone (removed by hand):
// the writer of that epoch may still run without knowing, so the new
// owner waits one lease before it writes. By then that writer has renewed,
// found the newer epoch and stopped, or stopped acknowledging for want of
// a renewal.
func acquireOwner(st objstore.Store, vol, admin string, nbd []string, lease time.Duration) (*ownership, error) {
	owner, lockEpoch, err := liveOwner(st, vol)
	if err != nil {
		return nil, fmt.Errorf("lfs: read owner of %s: %w", vol, err)
	}
	if owner != nil {
		return nil, &InUseError{Volume: vol, Owner: *owner}
	}
	logEpoch, err := newestLogEpoch(st, vol)
	if err != nil {
		return nil, fmt.Errorf("lfs: read the log epoch of %s: %w", vol, err)
	}
	epoch := max(lockEpoch, logEpoch) + 1
	rec := selfRecord(epoch, admin, lease)
	rec.NBD = nbd
	b, _ := json.Marshal(rec)
	if err := writeObject(st, ownerObject(vol, "held", epoch), b); err != nil {
		if errors.Is(err, objstore.ErrExist) {
			if owner, _, _ := liveOwner(st, vol); owner != nil {
				return nil, &InUseError{Volume: vol, Owner: *owner}
			}
			return nil, fmt.Errorf("%w: %s: another process took it at the same moment", ErrInUse, vol)
		}
		return nil, fmt.Errorf("lfs: take owner lock of %s: %w", vol, err)
	}
	// Older lock objects are history now; removing them is best effort.
	if names, err := st.List(ownerDir(vol)); err == nil {
		keep := path.Base(ownerObject(vol, "held", epoch))
		for _, n := range names {
			if n != keep {
				_ = st.Remove(path.Join(ownerDir(vol), n))
			}
		}
	}
	if logEpoch > lockEpoch {
		time.Sleep(time.Duration(rec.LeaseSeconds * float64(time.Second)))
	}
	return &ownership{st: st, vol: vol, epoch: epoch, rec: rec, lastRenew: rec.Renewed}, nil
}

// newestLogEpoch returns the highest owner epoch in the headers of vol's
// newest segment objects (0 for an empty log). Segments are read from the
// newest back until one has a readable header; a crash may leave the
// newest without one.
func newestLogEpoch(st objstore.Store, vol string) (uint64, error) {
	seqs, attempts, err := segmentAttempts(st, vol)
	if err != nil {
		return 0, err
	}
	var epoch uint64
	for i := len(seqs) - 1; i >= 0; i-- {
		found := false
		for _, a := range attempts[seqs[i]] {
			sh, _, err := readSegmentHeader(st, segObjName(vol, seqs[i], a), seqs[i])
			if err != nil {
				continue // torn or damaged: recovery deals with it
			}
			epoch, found = max(epoch, sh.Epoch), true
		}
		if found {
			return epoch, nil
		}
	}
	return epoch, nil
}

// renew confirms the lease: it fails with ErrFenced when a newer owner
// exists, else rewrites the lock with a new renewal time (written aside,
// renamed over it).
func (o *ownership) renew() error {
	epoch, _, err := ownerState(o.st, o.vol)
	if err != nil {
		return err
	}
	if epoch > o.epoch {
		return fmt.Errorf("%w: %s has an owner with epoch %d, this process holds %d", ErrFenced, o.vol, epoch, o.epoch)
	}
	name := ownerObject(o.vol, "held", o.epoch)
	cur, err := readObject(o.st, name)
	if errors.Is(err, objstore.ErrNotExist) {
		return fmt.Errorf("%w: %s: the owner lock of epoch %d is gone (removed by hand?)", ErrFenced, o.vol, o.epoch)
	}
	if err != nil {
		return err
	}
	var held OwnerRecord
	if json.Unmarshal(cur, &held) == nil && held.Token != o.rec.Token {
		return fmt.Errorf("%w: %s: another process (pid %d on %s) holds the same epoch %d", ErrFenced, o.vol, held.PID, held.Host, o.epoch)
	}
	now := time.Now().UTC()
	rec := o.rec
	rec.Renewed = now
	b, _ := json.Marshal(rec)
	if err := replaceObject(o.st, name, b); err != nil {
		return err
	}
	o.mu.Lock()
	o.lastRenew = now
	o.mu.Unlock()
	return nil
}

// record returns the lock's record as of its last renewal.
func (o *ownership) record() OwnerRecord {
	o.mu.Lock()
	defer o.mu.Unlock()
	rec := o.rec
	if !o.lastRenew.IsZero() {
		rec.Renewed = o.lastRenew
	}
	return rec
}

// leaseHeld reports whether the last renewal is recent enough that no
// other host may have taken the volume over.
func (o *ownership) leaseHeld() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return time.Since(o.lastRenew) < time.Duration(o.rec.LeaseSeconds*float64(time.Second))*2/3
}

// release marks the lock free, keeping its epoch so the next owner's is higher.
func (o *ownership) release() error {
	return o.st.Rename(ownerObject(o.vol, "held", o.epoch), ownerObject(o.vol, "free", o.epoch))
}

func selfRecord(epoch uint64, admin string, lease time.Duration) OwnerRecord {
	if lease <= 0 {
		lease = DefaultLease
	}
	now := time.Now().UTC()
	return OwnerRecord{Host: hostname(), PID: os.Getpid(), PIDStart: pidStart(os.Getpid()),
		Epoch: epoch, Since: now, Admin: admin, Renewed: now, LeaseSeconds: lease.Seconds(),
		Token: fmt.Sprintf("%016x", newUID())}
}

// processAlive reports whether rec's process may still run; a variable so
// crash tests can declare their own, simulated-dead process gone.
var processAlive = processAliveOS

// processAliveOS: a process on this host is gone when there is no such
// pid, or the pid was reused by a process with another start time; one on
// another host when its lease ran out without renewal.
func processAliveOS(rec OwnerRecord) bool {
	if rec.Host != hostname() {
		lease := time.Duration(rec.LeaseSeconds * float64(time.Second))
		return rec.Renewed.IsZero() || lease <= 0 || time.Since(rec.Renewed) < lease
	}
	if rec.PID <= 0 {
		return false
	}
	if err := syscall.Kill(rec.PID, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	start := pidStart(rec.PID)
	return start == "" || rec.PIDStart == "" || start == rec.PIDStart
}

// pidStart returns the start time of pid in clock ticks since boot (field 22
// of /proc/pid/stat), "" when unknown.
func pidStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return ""
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return ""
	}
	return fields[19] // field 22 overall; fields here start at field 3
}
