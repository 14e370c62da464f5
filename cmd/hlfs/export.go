package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/hlfs/hlfs/internal/progress"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// allocWindow is the range of the volume whose allocation export asks for
// at a time.
const allocWindow = 64 << 20

// exportCmd returns "hlfs export".
func (c *cli) exportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "export VOLUME[@SNAPSHOT] FILE",
		Short: "copy a volume or a snapshot into a raw disk image",
		Long: `
Export writes VOLUME, or its snapshot VOLUME@SNAPSHOT, as a raw image to FILE,
replacing FILE if it exists. Only the data is copied; holes stay holes in
FILE, which is sparse where the file system allows. The volume may be served
meanwhile: export copies it as it was when export started, without taking it
over.`,
		Args: positional("VOLUME[@SNAPSHOT]", "FILE"),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.exportImage(args[0], args[1])
		},
	}
}

func (c *cli) exportImage(arg, file string) (err error) {
	name, snap := arg, ""
	if strings.Contains(arg, "@") {
		name, snap, err = snapshotArg(arg)
	} else {
		name, err = volumeArg(arg)
	}
	if err != nil {
		return err
	}
	existed := false
	if fi, err := os.Stat(file); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("cannot export to %s: not a regular file", file)
		}
		existed = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	v, err := lfs.Open(st, name, lfs.Options{ReadOnly: true, Logger: c.warnLogger()})
	if err != nil {
		return c.volumeError(name, err)
	}
	defer v.Close()
	var src imageSource = v
	if snap != "" {
		if src, err = v.SnapshotView(snap); err != nil {
			return c.snapshotError(name, snap, err)
		}
	}

	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = cerr
		}
		if err != nil && !existed {
			os.Remove(file)
		}
	}()
	size := src.Size()
	if err := f.Truncate(size); err != nil {
		return err
	}
	bar := progress.New(c.stderr, "exporting "+arg, size)
	defer bar.Done()
	if err := c.copyVolume(src, f, bar); err != nil {
		return fmt.Errorf("exporting %s to %s: %w", arg, file, err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return nil
}

// imageSource is what export copies: a volume (*lfs.Volume) or a snapshot
// (*lfs.SnapshotView).
type imageSource interface {
	Size() int64
	ReadAt(p []byte, off int64) error
	Allocation(off, length int64, fn func(length int64, hole bool) error) error
}

var (
	_ imageSource = (*lfs.Volume)(nil)
	_ imageSource = (*lfs.SnapshotView)(nil)
)

// copyVolume writes v's data ranges into f, which is v.Size() bytes of
// zeros, leaving holes and all-zero chunks unwritten.
func (c *cli) copyVolume(v imageSource, f *os.File, bar *progress.Bar) error {
	type run struct {
		off, n int64
	}
	buf := make([]byte, copyChunk)
	size := v.Size()
	for off := int64(0); off < size; {
		if err := c.ctx.Err(); err != nil {
			return errors.New("interrupted; the file is incomplete")
		}
		var data []run
		pos := off
		err := v.Allocation(off, min(allocWindow, size-off), func(n int64, hole bool) error {
			if !hole {
				data = append(data, run{pos, n})
			}
			pos += n
			return nil
		})
		if err != nil {
			return err
		}
		if pos == off {
			return fmt.Errorf("no allocation reported at offset %d", off)
		}
		for _, r := range data {
			for p, end := r.off, r.off+r.n; p < end; {
				chunk := buf[:min(copyChunk, end-p)]
				if err := v.ReadAt(chunk, p); err != nil {
					return err
				}
				if !isZero(chunk) {
					if _, err := f.WriteAt(chunk, p); err != nil {
						return err
					}
				}
				p += int64(len(chunk))
				bar.Set(p)
			}
		}
		off = pos
		bar.Set(off)
	}
	return nil
}
