package objstore

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

var (
	// ErrExist is returned by Create when the name is taken.
	ErrExist = errors.New("objstore: object exists")
	// ErrNotExist is returned by Open, Remove, Rename and Persist when the
	// object is absent.
	ErrNotExist = errors.New("objstore: object does not exist")
	// ErrNotFolder is returned by List for a name that is an object, not a
	// folder (a stray file where a volume folder would be).
	ErrNotFolder = errors.New("objstore: not a folder")
	// ErrNoStore is returned by OpenDirStore (and hdfsbackend.Open without
	// Options.Create) when the store's root does not exist: stores are
	// created explicitly, so a mistyped path is an error, not a new store.
	ErrNoStore = errors.New("objstore: no store there")
	// ErrSyncUnsupported is returned by Writer.Sync on stores where only
	// Close makes an object durable.
	ErrSyncUnsupported = errors.New("objstore: sync of an open object unsupported; close it")
	// ErrBadName is returned by every method for a malformed name.
	ErrBadName = errors.New("objstore: bad object name")
	// ErrInjected is the error MemStore returns where a test injected a fault.
	ErrInjected = errors.New("objstore: injected fault")
	// ErrTransient is wrapped by store errors that may go away when the
	// operation is tried again (a NameNode restarting, a DataNode pipeline
	// failure: a new object gets a new pipeline). Callers may retry these.
	ErrTransient = errors.New("objstore: transient failure")
	// ErrCrashed is returned by handles opened before MemStore.Crash.
	ErrCrashed = errors.New("objstore: store crashed")
)

// CheckName returns an error wrapping ErrBadName unless name is a clean
// relative slash-separated path. Folder names ("" for the root) are allowed
// where empty is meaningful; pass allowRoot for those.
func CheckName(name string, allowRoot bool) error {
	if name == "" {
		if allowRoot {
			return nil
		}
		return fmt.Errorf("%w: empty", ErrBadName)
	}
	if strings.HasPrefix(name, "/") || path.Clean(name) != name || name == "." {
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." || elem == "." || elem == "" {
			return fmt.Errorf("%w: %q", ErrBadName, name)
		}
	}
	return nil
}
