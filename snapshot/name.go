package snapshot

import (
	"fmt"
	"regexp"
	"strings"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidateVolumeName returns a *NameError unless name is a valid volume
// name: 1 to 128 characters of letters, digits, '.', '_' and '-', starting
// with a letter or digit. '@' is reserved for VOLUME@SNAPSHOT.
func ValidateVolumeName(name string) error { return validate("volume", name) }

// ValidateName returns a *NameError unless name is a valid snapshot name;
// the rule is the volume name rule.
func ValidateName(name string) error { return validate("snapshot", name) }

func validate(kind, name string) error {
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

// ParseRef splits "VOLUME@SNAPSHOT" and validates both names. Errors wrap
// ErrInvalidName.
func ParseRef(ref string) (vol, snap string, err error) {
	vol, snap, ok := strings.Cut(ref, "@")
	if !ok {
		return "", "", fmt.Errorf("%w %q: want VOLUME@SNAPSHOT", ErrInvalidName, ref)
	}
	if err := ValidateVolumeName(vol); err != nil {
		return "", "", err
	}
	if err := ValidateName(snap); err != nil {
		return "", "", err
	}
	return vol, snap, nil
}
