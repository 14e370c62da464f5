package cliutil

import (
	"errors"
	"os"
	"syscall"
)

// NextData finds the first run of data in f at or after off, for copying a
// sparse file without reading its holes. It returns the run [start, end),
// clipped to size; start == size means there is no data left. Where the
// system or file system cannot report holes (or f is not a regular file), the
// whole rest [off, size) is reported as data, which is always correct, only
// slower. NextData moves f's seek offset; callers read with ReadAt.
func NextData(f *os.File, off, size int64) (start, end int64, err error) {
	if off >= size {
		return size, size, nil
	}
	if seekData < 0 {
		return off, size, nil
	}
	start, err = f.Seek(off, seekData)
	switch {
	case errors.Is(err, syscall.ENXIO):
		return size, size, nil // only a hole (or EOF) from off on
	case err != nil:
		return off, size, nil // no SEEK_DATA support here
	case start >= size:
		return size, size, nil
	}
	end, err = f.Seek(start, seekHole)
	if err != nil || end > size || end <= start {
		end = size
	}
	return start, end, nil
}
