package lfs

import (
	"fmt"
	"path"
	"regexp"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidateName returns an error wrapping ErrInvalidName unless name is a
// valid volume name: 1 to 128 characters of letters, digits, '.', '_' and
// '-', starting with a letter or digit. '@' is reserved for snapshots.
func ValidateName(name string) error {
	if nameRE.MatchString(name) {
		return nil
	}
	return fmt.Errorf("%w %q: use 1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit ('@' is reserved for VOLUME@SNAPSHOT)", ErrInvalidName, name)
}

// Object names inside a volume's folder (docs/format.md).
func superName(vol string) string           { return path.Join(vol, "super") }
func segDir(vol string) string              { return path.Join(vol, "seg") }
func ckptDir(vol string) string             { return path.Join(vol, "ckpt") }
func ownerDir(vol string) string            { return path.Join(vol, "owner") }
func segName(vol string, seq uint64) string { return path.Join(segDir(vol), fmt.Sprintf("%016x", seq)) }
func ckptName(vol string, p logPos) string {
	return path.Join(ckptDir(vol), fmt.Sprintf("%016x-%016x", p.seq, p.off))
}
