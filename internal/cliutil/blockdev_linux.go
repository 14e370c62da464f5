package cliutil

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// blkGetSize64 is BLKGETSIZE64, _IOR(0x12, 114, size_t) (linux/fs.h).
const blkGetSize64 = 0x80081272

// BlockDeviceSize returns the size in bytes of the block device open as f,
// from the kernel (ioctl BLKGETSIZE64): seeking to the end of a device is
// not a size every kernel and driver report.
func BlockDeviceSize(f *os.File) (int64, error) {
	var size uint64
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), blkGetSize64, uintptr(unsafe.Pointer(&size))); errno != 0 {
		return 0, fmt.Errorf("size of block device %s: %w", f.Name(), errno)
	}
	return int64(size), nil
}
