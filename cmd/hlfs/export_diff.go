package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/hlfs/hlfs/internal/progress"
	"github.com/hlfs/hlfs/internal/rbddiff"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// maxDiffWrite bounds the data of one write record of export-diff (RBD's
// default object size).
const maxDiffWrite = 4 << 20

// exportDiffCmd returns "hlfs export-diff".
func (c *cli) exportDiffCmd() *cobra.Command {
	var from string
	var format int
	cmd := &cobra.Command{
		Use:   "export-diff VOLUME[@TO] [--from-snap FROM] FILE|-",
		Short: "write the changes since a snapshot as an RBD diff stream",
		Long: `
Export-diff writes the changes of VOLUME from its snapshot FROM to its
snapshot TO (or to the volume as it is now) to FILE, or to standard output for
"-", in Ceph RBD's export-diff stream format (docs.ceph.com, dev/rbd-diff):
the changed data as write records, trimmed and zeroed ranges as zero records,
the volume size, and the two snapshot names. Without --from-snap it is a full
export: the data of the whole volume, its holes as zero records. Only what
changed is read (hlfs diff lists it). 'hlfs import-diff' applies such a stream
to another volume, in this store or another; 'rbd import-diff' applies a
--format 1 stream to an RBD image. The volume may be served meanwhile.`,
		Args: positional("VOLUME[@TO]", "FILE|-"),
		RunE: func(_ *cobra.Command, args []string) error {
			if format != 1 && format != 2 {
				return usageError("export-diff", "--format: want 1 or 2, not %d", format)
			}
			return c.exportDiff(args[0], from, args[1], format)
		},
	}
	cmd.Flags().StringVar(&from, "from-snap", "", "the snapshot `FROM` the changes start at (none: a full export)")
	cmd.Flags().IntVar(&format, "format", 2, "stream format version: 2 (rbd diff v2), or 1 for rbd import-diff")
	return cmd
}

// diffPiece is a range export-diff writes: data, or zeros.
type diffPiece struct {
	off, n int64
	zero   bool
}

func (c *cli) exportDiff(arg, from, file string, format int) (err error) {
	vol, to := arg, ""
	if strings.Contains(arg, "@") {
		vol, to, err = snapshotArg(arg)
	} else {
		vol, err = volumeArg(arg)
	}
	if err != nil {
		return err
	}
	if from != "" {
		if err := lfs.ValidateName(from); err != nil {
			return usageError("export-diff", "--from-snap: %v", err)
		}
	}
	if from != "" && from == to {
		return fmt.Errorf("--from-snap %s is the snapshot exported; a diff needs an older one", from)
	}
	v, err := c.openPoints(vol, from, to)
	if err != nil {
		return err
	}
	defer v.Close()
	var src imageSource = v
	if to != "" {
		if src, err = v.SnapshotView(to); err != nil {
			return c.snapshotError(vol, to, err)
		}
	}
	pieces, total, err := diffPieces(v, src, from, to)
	if err != nil {
		return fmt.Errorf("reading the changes of %s: %w", arg, err)
	}

	var out io.Writer = c.stdout
	if file != "-" {
		f, err := createOutput(file)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); cerr != nil && err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(file)
			}
		}()
		out = f
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	w, err := rbddiff.NewWriter(bw, rbddiff.Header{Version: format, From: from, To: to, Size: uint64(v.Size())})
	if err != nil {
		return err
	}
	bar := progress.New(c.stderr, "exporting the diff of "+arg, total)
	defer bar.Done()
	buf := make([]byte, maxDiffWrite)
	var done int64
	for _, p := range pieces {
		if err := c.ctx.Err(); err != nil {
			return errors.New("interrupted; the stream is incomplete (it has no end record)")
		}
		if p.zero {
			if err := w.Zero(uint64(p.off), uint64(p.n)); err != nil {
				return err
			}
			done += p.n
			bar.Set(done)
			continue
		}
		for pos, end := p.off, p.off+p.n; pos < end; {
			chunk := buf[:min(maxDiffWrite, end-pos)]
			if err := src.ReadAt(chunk, pos); err != nil {
				return fmt.Errorf("reading %s at %d: %w", arg, pos, err)
			}
			if isZero(chunk) {
				err = w.Zero(uint64(pos), uint64(len(chunk)))
			} else {
				err = w.Write(uint64(pos), chunk)
			}
			if err != nil {
				return err
			}
			pos += int64(len(chunk))
			done += int64(len(chunk))
			bar.Set(done)
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if f, ok := out.(*os.File); ok && file != "-" {
		return f.Sync()
	}
	return nil
}

// diffPieces returns what export-diff writes: the changes from snapshot
// from to src (v itself, or its snapshot to), or, without from, all of src
// (its data, and its holes as zeros); and the bytes they cover.
func diffPieces(v *lfs.Volume, src imageSource, from, to string) ([]diffPiece, int64, error) {
	var pieces []diffPiece
	var total int64
	if from != "" {
		err := v.Changes(from, to, func(r lfs.ChangedRange) error {
			pieces = append(pieces, diffPiece{r.Off, r.Length, r.Zero})
			total += r.Length
			return nil
		})
		return pieces, total, err
	}
	size := src.Size()
	for off := int64(0); off < size; {
		pos := off
		err := src.Allocation(off, min(allocWindow, size-off), func(n int64, hole bool) error {
			if k := len(pieces); k > 0 && pieces[k-1].zero == hole && pieces[k-1].off+pieces[k-1].n == pos {
				pieces[k-1].n += n
			} else {
				pieces = append(pieces, diffPiece{pos, n, hole})
			}
			pos += n
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
		if pos == off {
			return nil, 0, fmt.Errorf("no allocation reported at offset %d", off)
		}
		off = pos
	}
	return pieces, size, nil
}

// createOutput creates (or truncates) a regular file to write a stream to.
func createOutput(file string) (*os.File, error) {
	if fi, err := os.Stat(file); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("cannot write to %s: not a regular file", file)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
}
