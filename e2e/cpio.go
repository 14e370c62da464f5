package e2e

import (
	"bufio"
	"fmt"
	"io"
)

// cpioWriter writes the "newc" (SVR4, no CRC) cpio format the Linux
// initramfs unpacker reads. Archives may be concatenated: the kernel unpacks
// each in turn, later entries overwriting earlier ones, which is how a
// per-boot test script is appended to the cached base image.
//
// Entry layout: a 110-byte ASCII header ("070701" and 13 eight-digit hex
// fields), the NUL-terminated name padded to a multiple of 4 bytes counted
// from the header start, then the data padded to a multiple of 4.
type cpioWriter struct {
	w   *bufio.Writer
	n   int64 // bytes written so far, for padding
	ino int
	err error // sticky
}

const (
	cpioModeDir  = 0o040000
	cpioModeFile = 0o100000
	cpioModeLink = 0o120000
	cpioModeChr  = 0o020000
)

func newCpioWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20)}
}

func (c *cpioWriter) write(p []byte) {
	if c.err != nil {
		return
	}
	_, c.err = c.w.Write(p)
	c.n += int64(len(p))
}

func (c *cpioWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// entry writes one member. name has no leading slash; rdev is used for
// character devices only.
func (c *cpioWriter) entry(name string, mode uint32, data []byte, rdevMajor, rdevMinor int) {
	c.ino++
	nlink := 1
	if mode&0o170000 == cpioModeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(name))
	c.write([]byte{0})
	c.pad()
	c.write(data)
	c.pad()
}

// Dir adds a directory (mode 0755).
func (c *cpioWriter) Dir(name string) { c.entry(name, cpioModeDir|0o755, nil, 0, 0) }

// File adds a regular file with the given permission bits.
func (c *cpioWriter) File(name string, perm uint32, data []byte) {
	c.entry(name, cpioModeFile|perm, data, 0, 0)
}

// Symlink adds a symbolic link name -> target.
func (c *cpioWriter) Symlink(name, target string) {
	c.entry(name, cpioModeLink|0o777, []byte(target), 0, 0)
}

// CharDev adds a character device node.
func (c *cpioWriter) CharDev(name string, major, minor int) {
	c.entry(name, cpioModeChr|0o600, nil, major, minor)
}

// Close writes the trailer and flushes. It does not close the underlying writer.
func (c *cpioWriter) Close() error {
	c.entry("TRAILER!!!", 0, nil, 0, 0)
	if c.err == nil {
		c.err = c.w.Flush()
	}
	return c.err
}
