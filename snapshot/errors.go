package snapshot

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound is returned by Apply and Validate for an operation that
	// names a snapshot the tree lacks.
	ErrNotFound = errors.New("snapshot: no such snapshot")
	// ErrExists is returned by Apply and Validate for a create whose name is
	// taken.
	ErrExists = errors.New("snapshot: snapshot already exists")
	// ErrConflict is returned by Apply and Validate for an operation that
	// does not fit the tree: an id not above every id given out, an unknown
	// parent, an unknown kind.
	ErrConflict = errors.New("snapshot: operation conflicts with the snapshot tree")
	// ErrInvalidName is wrapped by *NameError, returned for a volume or
	// snapshot name outside the allowed set.
	ErrInvalidName = errors.New("snapshot: invalid name")
	// ErrCorrupt is returned by the decoders (DecodeOp, DecodeTree,
	// DecodeLineage) for bytes that are not a valid encoding.
	ErrCorrupt = errors.New("snapshot: corrupt encoding")
	// ErrNewerVersion is returned by DecodeLineage and DecodeTree for an
	// encoding of a newer version than this binary reads.
	ErrNewerVersion = errors.New("snapshot: newer format version")
	// ErrBroken is returned by Check for a tree whose invariants do not hold.
	ErrBroken = errors.New("snapshot: tree invariant broken")
)

// corruptf returns an error wrapping ErrCorrupt.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}
