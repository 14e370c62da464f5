package lfs

import (
	"fmt"
	"path"

	"github.com/hlfs/hlfs/segment"
	"github.com/hlfs/hlfs/snapshot"
)

// ValidateName returns an error wrapping ErrInvalidName unless name is a
// valid volume name: 1 to 128 characters of letters, digits, '.', '_' and
// '-', starting with a letter or digit. '@' is reserved for snapshots. The
// rule and its error (*snapshot.NameError) live in package snapshot.
func ValidateName(name string) error { return snapshot.ValidateVolumeName(name) }

// Object names inside a volume's folder (docs/format.md).
func superName(vol string) string           { return path.Join(vol, "super") }
func segDir(vol string) string              { return path.Join(vol, "seg") }
func ckptDir(vol string) string             { return path.Join(vol, "ckpt") }
func ownerDir(vol string) string            { return path.Join(vol, "owner") }
func lostFoundDir(vol string) string        { return path.Join(vol, "lost+found") }
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
