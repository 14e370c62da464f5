package lfs

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hlfs/hlfs/segment"
	"github.com/hlfs/hlfs/snapshot"
)

var (
	// ErrNotFound is returned by Open, Stat, Remove and Resize for a volume
	// that does not exist.
	ErrNotFound = errors.New("lfs: no such volume")
	// ErrExists is returned by Create when the volume exists.
	ErrExists = errors.New("lfs: volume already exists")
	// ErrInvalidName is wrapped by the errors of ValidateName,
	// ParseSnapshotRef and CreateSnapshot for a volume or snapshot name
	// outside the allowed set; it is snapshot.ErrInvalidName.
	ErrInvalidName = snapshot.ErrInvalidName
	// ErrInvalidConfig is returned by Create for a bad size, block size or
	// segment size.
	ErrInvalidConfig = errors.New("lfs: invalid volume configuration")
	// ErrInUse is wrapped by *InUseError, returned by Open, Remove and Resize
	// while another live process owns the volume.
	ErrInUse = errors.New("lfs: volume in use")
	// ErrShrink is returned by Resize when the new size is smaller and
	// shrinking was not allowed.
	ErrShrink = errors.New("lfs: refusing to shrink")
	// ErrCorrupt is wrapped by *CorruptionError: damaged data found by Open,
	// ReadAt or Fsck.
	ErrCorrupt = errors.New("lfs: corrupt volume data")
	// ErrNewerFormat is returned when the store holds data from a newer
	// format version than this binary.
	ErrNewerFormat = errors.New("lfs: volume written by a newer hlfs format version")
	// ErrReadOnly is returned by writes to a volume opened read-only.
	ErrReadOnly = errors.New("lfs: volume is read-only")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("lfs: volume closed")
	// ErrJournalPending is returned by Open while a write-back journal on
	// some host holds segments of the volume not yet shipped to the store.
	ErrJournalPending = errors.New("lfs: a write-back journal holds unshipped data of this volume")
	// ErrOutOfRange is returned for I/O beyond the end of the volume.
	ErrOutOfRange = errors.New("lfs: range beyond end of volume")
	// ErrNotClone is returned by Flatten for a volume that has no source.
	ErrNotClone = errors.New("lfs: not a clone")
	// ErrFenced is returned by every write after another writer created a
	// segment this one meant to create: the volume was taken over.
	ErrFenced = errors.New("lfs: volume taken over by another writer")
	// ErrStandby is returned by Roaming's writes, zeroes and flushes while
	// another process owns the volume and no hand-off channel is set
	// (RoamOptions.Ask), or ownership moved on again at once.
	ErrStandby = errors.New("lfs: volume is served as a standby: another process owns it")
	// ErrStoreUnavailable is returned by writes that waited too long for a
	// failing store; it wraps the store's last error.
	ErrStoreUnavailable = errors.New("lfs: store unavailable")
	// ErrDamaged is wrapped by *DamagedError, returned by Open, Stat, Fsck,
	// Create and every other call that reads a volume's superblock when the
	// superblock is missing, short or does not decode while the volume's
	// log (segments or checkpoints) remains. RepairSuperblock rebuilds it;
	// Remove removes such a volume.
	ErrDamaged = errors.New("lfs: volume damaged")
	// ErrSnapshotNotFound is returned for a snapshot name a volume lacks.
	ErrSnapshotNotFound = errors.New("lfs: no such snapshot")
	// ErrSnapshotExists is returned by CreateSnapshot for a taken name.
	ErrSnapshotExists = errors.New("lfs: snapshot already exists")
	// ErrHasClones is returned by DeleteSnapshot, Remove and Flatten while
	// clones depend on the snapshot or volume; the message names them.
	ErrHasClones = errors.New("lfs: clones depend on it")
	// ErrHasSnapshots is returned by Flatten while the clone's own
	// snapshots still share data with its source.
	ErrHasSnapshots = errors.New("lfs: snapshots depend on it")
)

// errTruncated marks a segment that holds no valid header and no valid
// record: a crash before any of it was durable.
var errTruncated = errors.New("segment has no valid header or records")

// CorruptionError names a damaged object and offset.
type CorruptionError struct {
	Object string
	Offset int64
	Reason string
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("lfs: corrupt data in %s at offset %d: %s", e.Object, e.Offset, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptionError) Unwrap() error { return ErrCorrupt }

func corruptf(object string, off int64, format string, args ...any) error {
	return &CorruptionError{Object: object, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// IsCorruption reports whether err reports damaged data.
func IsCorruption(err error) bool {
	return errors.Is(err, ErrCorrupt) || errors.Is(err, segment.ErrCorrupt)
}

// DamagedError says why a volume whose log remains has no usable
// superblock. It wraps ErrDamaged and ErrCorrupt (IsCorruption is true).
type DamagedError struct {
	Volume string
	// Reason is what is wrong with the superblock, and what remains.
	Reason string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("lfs: volume %s is damaged: %s", e.Volume, e.Reason)
}

// Unwrap makes errors.Is(err, ErrDamaged) and IsCorruption(err) true.
func (e *DamagedError) Unwrap() []error { return []error{ErrDamaged, ErrCorrupt} }

// LeftoverError is returned by Create when the volume's folder holds
// objects but neither a superblock nor a log: what an interrupted create,
// clone or remove leaves. It wraps ErrExists; Remove clears them.
type LeftoverError struct {
	Volume string
	// Names are the entries of the folder.
	Names []string
}

func (e *LeftoverError) Error() string {
	return fmt.Sprintf("%v: %s (the store holds objects under %s/ without a superblock: %s; remove them first)",
		ErrExists, e.Volume, e.Volume, strings.Join(e.Names, ", "))
}

// Unwrap makes errors.Is(err, ErrExists) true.
func (e *LeftoverError) Unwrap() error { return ErrExists }

// InUseError says who owns a volume.
type InUseError struct {
	Volume string
	Owner  OwnerRecord
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("lfs: volume %s is in use by pid %d on host %s (epoch %d, since %s)",
		e.Volume, e.Owner.PID, e.Owner.Host, e.Owner.Epoch, e.Owner.Since.Format("2006-01-02 15:04:05"))
}

// Unwrap makes errors.Is(err, ErrInUse) true.
func (e *InUseError) Unwrap() error { return ErrInUse }
