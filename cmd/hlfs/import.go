package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/hlfs/hlfs/internal/cliutil"
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
	return &cobra.Command{
		Use:   "import FILE VOLUME",
		Short: "copy a raw disk image into a volume",
		Long: `
Import copies the raw image FILE into VOLUME, which must exist, not be served
and be at least as large as FILE. The volume then reads exactly as FILE
followed by zeros: anything it held before is replaced. Holes in FILE and
all-zero blocks are recorded as holes, so the volume stays thin.`,
		Args: positional("FILE", "VOLUME"),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.importImage(args[0], args[1])
		},
	}
}

// warnLogger is the logger of one-shot commands: volume warnings on stderr.
func (c *cli) warnLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func (c *cli) importImage(file, arg string) (err error) {
	name, err := volumeArg(arg)
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("cannot import %s: %w (it must be a file or device that can seek)", file, err)
	}
	st, err := c.openStore()
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
	if size > v.Size() {
		return fmt.Errorf("%s (%s) is larger than volume %s (%s); grow the volume first: hlfs resize %s --size %d",
			file, cliutil.FormatSize(size), name, cliutil.FormatSize(v.Size()), name,
			(size+int64(v.BlockSize())-1)/int64(v.BlockSize())*int64(v.BlockSize()))
	}
	bar := progress.New(c.stderr, "importing "+name, v.Size())
	defer bar.Done()
	im := importer{c: c, f: f, fileSize: size, v: v, bar: bar, buf: make([]byte, copyChunk)}
	if err := im.run(); err != nil {
		return fmt.Errorf("importing %s into %s: %w", file, name, err)
	}
	if err := v.Flush(); err != nil {
		return fmt.Errorf("flushing %s: %w", name, err)
	}
	return nil
}

// importer copies a file into a volume on a grid of copyChunk chunks, so
// that writes stay aligned to any block size. Chunks without data in the
// file, and everything past its end, become holes; runs of them are merged
// into one Zero call of at most maxZero bytes.
type importer struct {
	c        *cli
	f        *os.File
	fileSize int64
	v        *lfs.Volume
	bar      *progress.Bar
	buf      []byte

	// zeroOff, zeroLen is the pending hole not yet given to Zero.
	zeroOff, zeroLen int64
}

func (im *importer) run() error {
	volSize := im.v.Size()
	var dataStart, dataEnd int64 // the file's data run at or after off
	for off := int64(0); off < volSize; {
		if err := im.c.ctx.Err(); err != nil {
			return errors.New("interrupted; the volume holds part of the image")
		}
		if off >= dataEnd && off < im.fileSize {
			var err error
			if dataStart, dataEnd, err = cliutil.NextData(im.f, off, im.fileSize); err != nil {
				return err
			}
		}
		if off >= im.fileSize || dataStart >= im.fileSize {
			if err := im.zero(off, volSize-off); err != nil {
				return err
			}
			break
		}
		if dataStart >= off+copyChunk {
			next := dataStart / copyChunk * copyChunk
			if err := im.zero(off, next-off); err != nil {
				return err
			}
			off = next
			continue
		}
		n := min(copyChunk, volSize-off)
		chunk := im.buf[:n]
		fileN := min(n, im.fileSize-off)
		if _, err := im.f.ReadAt(chunk[:fileN], off); err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the file shrank while being read")
			}
			return err
		}
		clear(chunk[fileN:])
		if isZero(chunk) {
			if err := im.zero(off, n); err != nil {
				return err
			}
		} else {
			if err := im.flushZero(); err != nil {
				return err
			}
			if err := im.v.WriteAt(chunk, off, false); err != nil {
				return err
			}
		}
		off += n
		im.bar.Set(off)
	}
	return im.flushZero()
}

// zero adds [off, off+n) to the pending hole, which always ends at off.
func (im *importer) zero(off, n int64) error {
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
