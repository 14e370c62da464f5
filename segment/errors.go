package segment

import "errors"

var (
	// ErrTorn is returned by Decode and Scanner when bytes end inside a
	// record: the record was cut short (torn tail) or the input is truncated.
	ErrTorn = errors.New("segment: record cut short")
	// ErrCorrupt is returned by Decode and Scanner for a record that is
	// complete in length but fails its magic, fields or checksum.
	ErrCorrupt = errors.New("segment: corrupt record")
	// ErrNewerVersion is returned by Decode for a record written by a newer
	// format version than this binary understands.
	ErrNewerVersion = errors.New("segment: record from a newer format version")
)
