package lfs

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hlfs/hlfs/internal/objstore"
)

// What a store's root holds, entry by entry (docs/format.md, "What a store's
// root holds"): volumes, damaged volumes, and things that are not volumes,
// which the commands skip with a warning rather than fail on.

// Listing is what ListStore found in a store's root.
type Listing struct {
	// Volumes are the names of the volumes, sorted, damaged ones included
	// (opening one returns a *DamagedError).
	Volumes []string
	// Ignored are the root's entries that are not volumes, sorted by name.
	// An empty folder, or one holding only a superblock cut short by an
	// interrupted creation, is neither a volume nor listed here.
	Ignored []Ignored
}

// Ignored is an entry of a store's root that is not a volume.
type Ignored struct {
	Name string
	Kind IgnoredKind
	// Entries are what a leftover folder holds (Kind IgnoredLeftover).
	Entries []string
}

// IgnoredKind says why an entry of a store's root is not a volume.
type IgnoredKind int

const (
	// IgnoredFile is an object, not a folder (a README).
	IgnoredFile IgnoredKind = iota + 1
	// IgnoredName is a folder whose name no volume can have (a filer's
	// .snapshot, lost+found).
	IgnoredName
	// IgnoredLeftover is a folder holding objects but no complete
	// superblock and no log: what an interrupted create, clone or remove
	// leaves (Remove clears it). It may also be a clone being made.
	IgnoredLeftover
)

// String says what the entry is, for a warning.
func (ig Ignored) String() string {
	switch ig.Kind {
	case IgnoredFile:
		return ig.Name + " is a file, not a volume folder"
	case IgnoredName:
		return ig.Name + " is not a volume name"
	case IgnoredLeftover:
		return fmt.Sprintf("%s holds %s but no superblock and no log (left by an interrupted create, clone or rm)",
			ig.Name, strings.Join(ig.Entries, ", "))
	}
	return ig.Name
}

// List returns the names of the volumes in the store, sorted, damaged ones
// included; see ListStore.
func List(st objstore.Store) ([]string, error) {
	l, err := ListStore(st)
	return l.Volumes, err
}

// ListStore lists the volumes in the store's root and the entries that are
// not volumes. A volume is a folder holding a superblock object of full
// length (it may still fail to decode), or a damaged one: a folder holding
// segments or checkpoints whose superblock is missing or short. Stray
// entries never make it fail.
func ListStore(st objstore.Store) (Listing, error) {
	var l Listing
	names, err := st.List("")
	if err != nil {
		return l, err
	}
	for _, n := range names {
		if n == indexDir {
			continue // the store index (index.go), not a volume
		}
		ignored, isVol, err := classifyRootEntry(st, n)
		switch {
		case err != nil:
			return l, err
		case ignored != nil:
			l.Ignored = append(l.Ignored, *ignored)
		case isVol:
			l.Volumes = append(l.Volumes, n)
		}
	}
	return l, nil
}

// holdsVolume reports whether folder vol, holding entries, is a volume:
// its superblock is of full length, or its log remains.
func holdsVolume(st objstore.Store, vol string, entries []string) (bool, error) {
	if slices.Contains(entries, "super") {
		size, err := objectSize(st, superName(vol))
		if err == nil && size >= superLen {
			return true, nil
		}
		if err != nil && !errors.Is(err, objstore.ErrNotExist) {
			return false, err
		}
	}
	if !slices.Contains(entries, "seg") && !slices.Contains(entries, "ckpt") {
		return false, nil
	}
	segs, ckpts, err := countLog(st, vol)
	return segs+ckpts > 0, err
}

// leftovers returns the entries of vol's folder when it holds objects but
// no complete superblock and no log, nil when it holds nothing or only a
// superblock cut short (a creation that replacing the superblock
// completes). The caller knows that readSuperblock found no volume.
func leftovers(st objstore.Store, vol string) ([]string, error) {
	names, err := st.List(vol)
	if errors.Is(err, objstore.ErrNotFolder) {
		return nil, nil // a stray file: no volume, nothing of hlfs's
	}
	if err != nil || len(names) == 0 || (len(names) == 1 && names[0] == "super") {
		return nil, err
	}
	return names, nil
}

// checkNoLeftovers returns a *LeftoverError when vol's folder holds
// leftovers; Create refuses to mix a new volume with them.
func checkNoLeftovers(st objstore.Store, vol string) error {
	names, err := leftovers(st, vol)
	if err != nil {
		return err
	}
	if len(names) > 0 {
		return &LeftoverError{Volume: vol, Names: names}
	}
	return nil
}

// ownEntry reports whether name, an entry of a volume's folder, is one hlfs
// writes there (docs/format.md, "Objects in a store").
func ownEntry(name string) bool {
	switch name {
	case "super", "seg", "ckpt", "snap", "owner", "readers", "gc", "lineage", "clones", "branches", "journal", "pool":
		return true
	}
	for _, tmp := range []string{"super.tmp-", "lineage.tmp-", "journal.tmp-"} {
		if strings.HasPrefix(name, tmp) {
			return true
		}
	}
	return false
}
