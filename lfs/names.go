package lfs

import (
	"fmt"
	"path"
	"regexp"

	"github.com/hlfs/hlfs/segment"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidateName returns an error wrapping ErrInvalidName unless name is a
// valid volume name: 1 to 128 characters of letters, digits, '.', '_' and
// '-', starting with a letter or digit. '@' is reserved for snapshots.
func ValidateName(name string) error { return validateName("volume", name) }

// validateName checks a volume or snapshot name; kind names it in the error.
func validateName(kind, name string) error {
	if nameRE.MatchString(name) {
		return nil
	}
	return &NameError{Kind: kind, Name: name}
}

// NameError reports a volume or snapshot name outside the allowed set; it
// wraps ErrInvalidName.
type NameError struct {
	Kind string // "volume" or "snapshot"
	Name string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("invalid %s name %q: use 1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit ('@' is reserved for VOLUME@SNAPSHOT)", e.Kind, e.Name)
}

// Unwrap makes errors.Is(err, ErrInvalidName) true.
func (e *NameError) Unwrap() error { return ErrInvalidName }

// Object names inside a volume's folder (docs/format.md).
func superName(vol string) string           { return path.Join(vol, "super") }
func segDir(vol string) string              { return path.Join(vol, "seg") }
func ckptDir(vol string) string             { return path.Join(vol, "ckpt") }
func ownerDir(vol string) string            { return path.Join(vol, "owner") }
func segName(vol string, seq uint64) string { return segObjName(vol, seq, 0) }

// segObjName names attempt attempt of segment seq: a segment whose object
// failed is written again, whole, under the next attempt's name.
func segObjName(vol string, seq uint64, attempt int) string {
	if attempt == 0 {
		return path.Join(segDir(vol), fmt.Sprintf("%016x", seq))
	}
	return path.Join(segDir(vol), fmt.Sprintf("%016x.%d", seq, attempt))
}
func ckptName(vol string, p segment.Pos) string {
	return path.Join(ckptDir(vol), fmt.Sprintf("%016x-%016x", p.Seq, p.Off))
}
