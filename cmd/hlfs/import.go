package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/internal/progress"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// copyChunk is the unit of import and export I/O.
const copyChunk = 1 << 20

// maxZero bounds the range of one Zero call during import.
const maxZero = 1 << 30

// importCmd returns "hlfs import".
func (c *cli) importCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import SOURCE VOLUME [--size SIZE] [--zero-rest]",
		Short: "copy a raw disk image into a volume",
		Long: `
Import copies the raw image SOURCE into VOLUME, which must not be served.
SOURCE is a regular file, a block device (its size is the device's), or a
stream read to its end: - for standard input, a pipe, or a character device.
Anything else (a directory, a socket) is refused.

The volume then reads as SOURCE from its start. Past the end of a shorter
source the volume keeps what it held, unless --zero-rest makes it read as
zeros. Holes in a file and all-zero blocks are recorded as holes, so the
volume stays thin.

A missing VOLUME is created (4 KiB blocks, no compression: use 'hlfs create'
first for others), as large as SOURCE rounded up to the block size, or
--size, which a stream needs: its length is not known beforehand. --size
also grows an existing volume that is smaller. A file or device larger than
the volume is refused before anything is written; a stream that does not
fit fills the volume and the command fails, saying so.`,
		Args: positional("SOURCE", "VOLUME"),
	}
	fs := cmd.Flags()
	size := fs.String("size", "", "the volume's `SIZE`: creates a missing volume that large, grows a smaller one")
	zeroRest := fs.Bool("zero-rest", false, "make the volume read as zeros past the end of SOURCE")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		n, err := sizeFlag("import", "size", *size, false)
		if err != nil {
			return err
		}
		return c.importImage(args[0], args[1], n, *zeroRest)
	}
	return cmd
}

// warnLogger is the logger of one-shot commands: volume warnings on stderr.
func (c *cli) warnLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// source is what import reads: a file or block device of known length,
// read at offsets (holes probed in regular files), or a stream of unknown
// length, read in order.
type source struct {
	name   string   // as given on the command line
	f      *os.File // nil for standard input
	r      io.Reader
	length int64 // -1: a stream
	holes  bool  // probe f for holes (cliutil.NextData)
}

// openSource opens the SOURCE argument of import and works out its kind.
func openSource(name string, stdin io.Reader) (*source, error) {
	if name == "-" {
		return &source{name: "standard input", r: stdin, length: -1}, nil
	}
	// The kind first: opening a socket fails, opening a pipe waits for a
	// writer.
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	mode := fi.Mode()
	block := mode&os.ModeDevice != 0 && mode&os.ModeCharDevice == 0
	stream := mode&(os.ModeCharDevice|os.ModeNamedPipe) != 0
	if !mode.IsRegular() && !block && !stream {
		return nil, fmt.Errorf("cannot import %s: it is %s; want a regular file, a block device, a character device, a pipe or - for standard input",
			name, describeMode(mode))
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	s := &source{name: name, f: f, r: f, length: -1}
	switch {
	case mode.IsRegular():
		s.length, s.holes = fi.Size(), true
	case block:
		if s.length, err = cliutil.BlockDeviceSize(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("cannot import %s: %w", name, err)
		}
	}
	return s, nil
}

// describeMode names a kind of file that import refuses.
func describeMode(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "not a file import can read (" + m.Type().String() + ")"
}

func (s *source) close() {
	if s.f != nil {
		s.f.Close()
	}
}

func (c *cli) importImage(file, arg string, size int64, zeroRest bool) (err error) {
	name, err := volumeArg(arg)
	if err != nil {
		return err
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	src, err := openSource(file, c.stdin)
	if err != nil {
		return err
	}
	defer src.close()
	created, err := c.prepareImportVolume(st, src, name, size)
	if err != nil {
		return err
	}
	v, err := lfs.Open(st, name, lfs.Options{Logger: c.warnLogger()})
	if err != nil {
		return c.volumeError(name, err)
	}
	defer func() {
		if cerr := v.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing %s: %w", name, cerr)
		}
	}()
	total := v.Size()
	if src.length >= 0 && !zeroRest {
		total = src.length
	}
	bar := progress.New(c.stderr, "importing "+name, total)
	defer bar.Done()
	im := importer{c: c, src: src, v: v, bar: bar, buf: make([]byte, copyChunk), created: created}
	n, err := im.run()
	if err == nil && zeroRest {
		err = im.zero(n, v.Size()-n)
	}
	if err == nil {
		err = im.flushZero()
	}
	if err != nil {
		return fmt.Errorf("importing %s into %s: %w", src.name, name, err)
	}
	if err := v.Flush(); err != nil {
		return fmt.Errorf("flushing %s: %w", name, err)
	}
	if src.length < 0 && n == v.Size() {
		if more, err := im.more(); err != nil {
			return fmt.Errorf("reading %s: %w", src.name, err)
		} else if more {
			return fmt.Errorf("%s is longer than volume %s (%s): the volume holds its first %s, the rest was not imported (give --size to grow the volume)",
				src.name, name, sizeString(v.Size()), sizeString(n))
		}
	}
	if n < v.Size() && !zeroRest && !im.created {
		fmt.Fprintf(c.stderr, "hlfs: %s: the image ends at %s; the rest of the volume (%s) holds what it held before (--zero-rest makes it zeros)\n",
			name, sizeString(n), sizeString(v.Size()-n))
	}
	return nil
}

// prepareImportVolume makes volume name ready to take src: it creates a
// missing volume (size bytes, else src's length rounded up to the block
// size), grows a smaller one to size, and refuses a file or device that
// does not fit. It reports whether it created the volume.
func (c *cli) prepareImportVolume(st objstore.Store, src *source, name string, size int64) (bool, error) {
	info, err := lfs.Stat(st, name)
	if errors.Is(err, lfs.ErrNotFound) {
		if size == 0 && src.length < 0 {
			return false, usageError("import", "%s has no length known beforehand: give --size to create volume %s", src.name, name)
		}
		if size == 0 && src.length == 0 {
			return false, fmt.Errorf("%s is empty: give --size to create volume %s", src.name, name)
		}
		if size == 0 {
			size = roundUpTo(src.length, lfs.DefaultBlockSize)
		}
		if src.length > size {
			return false, fmt.Errorf("%s (%s) is larger than --size %s", src.name, sizeString(src.length), sizeString(size))
		}
		if err := lfs.Create(st, name, lfs.Config{Size: size}); err != nil {
			return false, c.volumeError(name, err)
		}
		fmt.Fprintf(c.stdout, "created %s: %s, %s blocks\n", name, cliutil.FormatSize(size), cliutil.FormatSize(lfs.DefaultBlockSize))
		return true, nil
	}
	if err != nil {
		return false, c.volumeError(name, err)
	}
	if size != 0 && size < info.Size {
		return false, fmt.Errorf("--size %s is smaller than volume %s (%s); import never shrinks a volume (see 'hlfs resize --allow-shrink')",
			sizeString(size), name, sizeString(info.Size))
	}
	want := max(size, info.Size)
	if src.length > want {
		return false, fmt.Errorf("%s (%s) is larger than volume %s (%s); grow the volume with --size %d",
			src.name, cliutil.FormatSize(src.length), name, cliutil.FormatSize(info.Size), roundUpTo(src.length, int64(info.BlockSize)))
	}
	if want > info.Size {
		if err := lfs.Resize(st, name, want, false); err != nil {
			return false, c.volumeError(name, err)
		}
	}
	return false, nil
}

// roundUpTo rounds n up to a multiple of m.
func roundUpTo(n, m int64) int64 { return (n + m - 1) / m * m }

// importer copies a source into a volume on a grid of copyChunk chunks.
// Chunks without data in a file, and all-zero chunks, become holes; runs
// of them are merged into one Zero call of at most maxZero bytes.
type importer struct {
	c       *cli
	src     *source
	v       *lfs.Volume
	bar     *progress.Bar
	buf     []byte
	created bool // the volume was made for this import: it held nothing

	// zeroOff, zeroLen is the pending hole not yet given to Zero.
	zeroOff, zeroLen int64
}

// run copies the source into the volume and returns the bytes copied: the
// source's length, or the volume's size when a stream is longer. Holes may
// be pending (flushZero).
func (im *importer) run() (int64, error) {
	volSize := im.v.Size()
	end := volSize
	if im.src.length >= 0 {
		end = im.src.length // prepareImportVolume made it fit
	}
	var dataStart, dataEnd int64 // a file's data run at or after off
	for off := int64(0); off < end; {
		if err := im.c.ctx.Err(); err != nil {
			return off, errors.New("interrupted; the volume holds part of the image")
		}
		if im.src.holes && off >= dataEnd {
			var err error
			if dataStart, dataEnd, err = cliutil.NextData(im.src.f, off, end); err != nil {
				return off, err
			}
			if dataStart >= end {
				return end, im.zero(off, end-off)
			}
		}
		if im.src.holes && dataStart >= off+copyChunk {
			next := dataStart / copyChunk * copyChunk
			if err := im.zero(off, next-off); err != nil {
				return off, err
			}
			off = next
			continue
		}
		chunk := im.buf[:min(copyChunk, end-off)]
		want := len(chunk)
		n, err := im.read(chunk, off)
		if err != nil {
			return off, err
		}
		chunk = chunk[:n]
		if isZero(chunk) {
			err = im.zero(off, int64(n))
		} else if err = im.flushZero(); err == nil {
			err = im.v.WriteAt(chunk, off, false)
		}
		if err != nil {
			return off, err
		}
		off += int64(n)
		im.bar.Set(off)
		if n < want {
			return off, nil // a stream ended
		}
	}
	return end, nil
}

// read fills p with the source's bytes at off. A file or device must
// deliver all of them; a stream returns fewer at its end.
func (im *importer) read(p []byte, off int64) (int, error) {
	if im.src.length >= 0 {
		if _, err := im.src.f.ReadAt(p, off); err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%s shrank while being read", im.src.name)
			}
			return 0, err
		}
		return len(p), nil
	}
	n, err := io.ReadFull(im.src.r, p)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil
	}
	return n, err
}

// more reports whether a stream has bytes left.
func (im *importer) more() (bool, error) {
	var b [1]byte
	n, err := io.ReadFull(im.src.r, b[:])
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	return n > 0, err
}

// zero adds [off, off+n) to the pending hole, which always ends at off.
func (im *importer) zero(off, n int64) error {
	if n <= 0 {
		return nil
	}
	if im.zeroLen == 0 {
		im.zeroOff = off
	}
	im.zeroLen += n
	for im.zeroLen >= maxZero {
		if err := im.v.Zero(im.zeroOff, maxZero, true, false); err != nil {
			return err
		}
		im.zeroOff += maxZero
		im.zeroLen -= maxZero
		im.bar.Set(im.zeroOff)
	}
	return nil
}

// flushZero punches the pending hole.
func (im *importer) flushZero() error {
	if im.zeroLen == 0 {
		return nil
	}
	if err := im.v.Zero(im.zeroOff, im.zeroLen, true, false); err != nil {
		return err
	}
	im.bar.Set(im.zeroOff + im.zeroLen)
	im.zeroLen = 0
	return nil
}

// isZero reports whether p holds only zero bytes.
func isZero(p []byte) bool {
	for len(p) >= 8 {
		if p[0]|p[1]|p[2]|p[3]|p[4]|p[5]|p[6]|p[7] != 0 {
			return false
		}
		p = p[8:]
	}
	for _, b := range p {
		if b != 0 {
			return false
		}
	}
	return true
}
