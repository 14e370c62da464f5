//go:build !linux

package cliutil

import (
	"io"
	"os"
)

// BlockDeviceSize returns the size in bytes of the block device open as f.
// Outside Linux it seeks to the device's end.
func BlockDeviceSize(f *os.File) (int64, error) {
	return f.Seek(0, io.SeekEnd)
}
