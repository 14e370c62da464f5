package rbddiff

import "errors"

var (
	// ErrFormat is returned (wrapped) by the Reader for a stream that breaks
	// the format: a wrong banner, inconsistent lengths, records out of order.
	ErrFormat = errors.New("rbddiff: malformed stream")
	// ErrTruncated is returned (wrapped) by the Reader when the stream ends
	// before its end record.
	ErrTruncated = errors.New("rbddiff: stream ends before its end record")
	// ErrOutOfBounds is returned (wrapped) by the Reader for a write or zero
	// record that reaches past the image size the stream gives.
	ErrOutOfBounds = errors.New("rbddiff: record beyond the image size")
	// ErrClosed is returned by Writer methods after Close.
	ErrClosed = errors.New("rbddiff: writer closed")
)
