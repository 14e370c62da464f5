package cliutil

// lseek whence values for hole probing (linux/fs.h).
const (
	seekData = 3 // SEEK_DATA
	seekHole = 4 // SEEK_HOLE
)
