package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/internal/progress"
	"github.com/hlfs/hlfs/internal/rbddiff"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// importDiffCmd returns "hlfs import-diff".
func (c *cli) importDiffCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "import-diff FILE|- VOLUME",
		Short: "apply an RBD diff stream to a volume, then snapshot it",
		Long: `
Import-diff applies a stream that 'hlfs export-diff' or 'rbd export-diff'
wrote (FILE, or standard input for "-") to VOLUME: it checks that the
volume's newest snapshot is the stream's from-snapshot, resizes the volume
when the stream's size differs, writes and zeroes what the stream says, then
creates the stream's to-snapshot. A stream without a from-snapshot (a full
export) creates VOLUME when it does not exist.

The whole stream is checked before the volume is touched (standard input is
first copied to a temporary file): a stream that is cut short, malformed,
reaches past its size or starts from another snapshot is refused with the
volume unchanged. The volume must not be served, and must not have been
written since the from-snapshot except by an earlier run of an import that
did not finish: then running the same import again completes it. Existing
snapshots are never changed (but see 'Not yet' in the README for streams that
shrink the volume).`,
		Args: positional("FILE|-", "VOLUME"),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.importDiff(args[0], args[1])
		},
	}
}

// span is a half-open range of volume bytes.
type span struct{ lo, hi int64 }

// streamCheck is what validating a stream found.
type streamCheck struct {
	h     rbddiff.Header
	spans []span // the ranges it writes or zeroes, sorted and merged
	size  int64  // its bytes
}

func (c *cli) importDiff(file, arg string) (err error) {
	name, err := volumeArg(arg)
	if err != nil {
		return err
	}
	path, label := file, file
	if file == "-" {
		label = "standard input"
		tmp, err := c.spool()
		if err != nil {
			return err
		}
		defer os.Remove(tmp)
		path = tmp
	}
	chk, err := checkStream(path)
	if err != nil {
		return fmt.Errorf("refusing %s: %s; %s is unchanged", label, cliutil.Message(err), name)
	}
	h := chk.h
	for _, s := range []string{h.From, h.To} {
		if s != "" && lfs.ValidateName(s) != nil {
			return fmt.Errorf("refusing %s: snapshot name %q is not valid here; %s is unchanged", label, s, name)
		}
	}
	size := int64(h.Size)
	if h.Size > 1<<62 {
		return fmt.Errorf("refusing %s: image size %d is too large; %s is unchanged", label, h.Size, name)
	}

	open := c.openStore
	if h.From == "" {
		open = c.createStore // a full stream may create the volume, and so the store, as create does
	}
	st, err := open()
	if err != nil {
		return err
	}
	v, err := lfs.Open(st, name, lfs.Options{Logger: c.warnLogger()})
	if errors.Is(err, lfs.ErrNotFound) && h.From == "" {
		bs := int64(4096)
		if size%bs != 0 {
			bs = 512
		}
		if err = lfs.Create(st, name, lfs.Config{Size: size, BlockSize: int(bs)}); err != nil {
			return c.volumeError(name, err)
		}
		v, err = lfs.Open(st, name, lfs.Options{Logger: c.warnLogger()})
	}
	if errors.Is(err, lfs.ErrNotFound) {
		return fmt.Errorf("no volume %q in store %s: a diff from snapshot %s applies to a volume that has it", name, c.store, h.From)
	}
	if err != nil {
		return c.volumeError(name, err)
	}
	defer func() {
		if v == nil {
			return
		}
		if cerr := v.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing %s: %w", name, cerr)
		}
	}()
	done, err := c.checkTarget(v, chk, label)
	if err != nil || done {
		return err
	}
	if size > v.Size() {
		if v, err = c.resizeOpen(v, size); err != nil {
			return err
		}
	}
	bar := progress.New(c.stderr, "importing the diff into "+name, chk.size)
	if err := c.applyStream(v, path, bar); err != nil {
		bar.Done()
		return fmt.Errorf("importing %s into %s: %w (run the same import again to complete it)", label, name, err)
	}
	bar.Done()
	if err := v.Flush(); err != nil {
		return fmt.Errorf("flushing %s: %w", name, err)
	}
	if size < v.Size() {
		if v, err = c.resizeOpen(v, size); err != nil {
			return err
		}
	}
	if h.To != "" {
		if err := v.CreateSnapshot(h.To); err != nil {
			return c.snapshotError(name, h.To, err)
		}
	}
	return nil
}

// spool copies standard input to a temporary file and returns its name.
func (c *cli) spool() (string, error) {
	f, err := os.CreateTemp("", "hlfs-import-diff-*")
	if err != nil {
		return "", fmt.Errorf("cannot keep standard input aside: %w", err)
	}
	_, err = io.Copy(f, c.stdin)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("reading standard input: %w", err)
	}
	return f.Name(), nil
}

// checkStream reads the whole stream at path without applying it: its
// header, and the ranges it changes.
func checkStream(path string) (streamCheck, error) {
	var chk streamCheck
	f, err := os.Open(path)
	if err != nil {
		return chk, err
	}
	defer f.Close()
	r, err := rbddiff.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return chk, err
	}
	chk.h = r.Header()
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return chk, err
		}
		if rec.Len > 0 {
			chk.spans = append(chk.spans, span{int64(rec.Off), int64(rec.Off + rec.Len)})
		}
	}
	if trailing, err := r.Trailing(); err != nil {
		return chk, err
	} else if trailing {
		return chk, fmt.Errorf("%w: bytes after the end record (offset %d)", rbddiff.ErrFormat, r.Offset())
	}
	chk.size = r.Offset()
	chk.spans = mergeSpans(chk.spans)
	return chk, nil
}

// mergeSpans sorts spans and merges those that overlap or touch.
func mergeSpans(s []span) []span {
	sort.Slice(s, func(i, j int) bool { return s[i].lo < s[j].lo })
	var out []span
	for _, x := range s {
		if k := len(out); k > 0 && x.lo <= out[k-1].hi {
			out[k-1].hi = max(out[k-1].hi, x.hi)
			continue
		}
		out = append(out, x)
	}
	return out
}

// covered reports whether [lo, hi) lies within the merged spans s.
func covered(s []span, lo, hi int64) bool {
	i := sort.Search(len(s), func(i int) bool { return s[i].hi > lo })
	return i < len(s) && s[i].lo <= lo && s[i].hi >= hi
}

// checkTarget decides whether the stream may be applied to v: its newest
// snapshot must be the stream's from-snapshot, the to-snapshot must not
// exist, and every range the volume changed since the from-snapshot (or,
// for a full stream, every range holding data) must be one the stream
// rewrites, so that the result is exactly the stream's end point: only an
// unfinished earlier run of an import leaves such changes. done reports a
// stream applied already (its to-snapshot is the newest and nothing changed
// since).
func (c *cli) checkTarget(v *lfs.Volume, chk streamCheck, label string) (done bool, err error) {
	h, name := chk.h, v.Name()
	snaps := v.SnapshotNames()
	newest := ""
	if len(snaps) > 0 {
		newest = snaps[len(snaps)-1]
	}
	if h.To != "" && slices.Contains(snaps, h.To) {
		if newest == h.To && (h.From == "" || slices.Contains(snaps, h.From)) {
			clean := true
			if err := v.Changes(h.To, "", func(lfs.ChangedRange) error { clean = false; return nil }); err != nil {
				return false, err
			}
			if clean {
				fmt.Fprintf(c.stderr, "%s@%s exists and %s is unchanged since: the stream was imported already\n", name, h.To, name)
				return true, nil
			}
		}
		return false, fmt.Errorf("refusing %s: snapshot %s@%s exists already; %s is unchanged", label, name, h.To, name)
	}
	if h.From != "" && newest != h.From {
		has := "no snapshot"
		if newest != "" {
			has = "newest snapshot " + newest
		}
		return false, fmt.Errorf("refusing %s: it applies to %s@%s, but %s has %s; %s is unchanged", label, name, h.From, name, has, name)
	}
	if int64(h.Size)%int64(v.BlockSize()) != 0 {
		return false, fmt.Errorf("refusing %s: its size %d is not a multiple of the block size %d of %s; %s is unchanged", label, h.Size, v.BlockSize(), name, name)
	}
	end := int64(h.Size) // what lies past the stream's end is cut anyway
	uncovered := func(lo, hi int64) bool {
		hi = min(hi, end)
		return lo < hi && !covered(chk.spans, lo, hi)
	}
	var stray *span
	if h.From != "" {
		err = v.Changes(h.From, "", func(r lfs.ChangedRange) error {
			if stray == nil && uncovered(r.Off, r.Off+r.Length) {
				stray = &span{r.Off, r.Off + r.Length}
			}
			return nil
		})
	} else {
		for off := int64(0); off < v.Size() && stray == nil && err == nil; {
			pos := off
			err = v.Allocation(off, min(allocWindow, v.Size()-off), func(n int64, hole bool) error {
				if !hole && stray == nil && uncovered(pos, pos+n) {
					stray = &span{pos, pos + n}
				}
				pos += n
				return nil
			})
			off = pos
		}
	}
	if err != nil {
		return false, err
	}
	if stray != nil {
		base := "the stream's base"
		if h.From != "" {
			base = name + "@" + h.From
		}
		return false, fmt.Errorf("refusing %s: %s holds data at %d (%d bytes) that differs from %s and the stream does not rewrite; roll it back first (hlfs snapshot rollback) or import into a new volume; %s is unchanged",
			label, name, stray.lo, stray.hi-stray.lo, base, name)
	}
	return false, nil
}

// resizeOpen closes v, resizes it and opens it again.
func (c *cli) resizeOpen(v *lfs.Volume, size int64) (*lfs.Volume, error) {
	name := v.Name()
	if err := v.Close(); err != nil {
		return nil, fmt.Errorf("closing %s: %w", name, err)
	}
	st, err := c.openStore()
	if err != nil {
		return nil, err
	}
	if err := lfs.Resize(st, name, size, true); err != nil {
		return nil, c.volumeError(name, err)
	}
	nv, err := lfs.Open(st, name, lfs.Options{Logger: c.warnLogger()})
	if err != nil {
		return nil, c.volumeError(name, err)
	}
	return nv, nil
}

// applyStream writes and zeroes what the stream at path says, in order.
// Every record is absolute, so applying a stream again over a partial
// application of it gives the same result.
func (c *cli) applyStream(v *lfs.Volume, path string, bar *progress.Bar) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := rbddiff.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return err
	}
	buf := make([]byte, copyChunk)
	for {
		if err := c.ctx.Err(); err != nil {
			return errors.New("interrupted")
		}
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch rec.Kind {
		case rbddiff.Zero:
			if err := v.Zero(int64(rec.Off), int64(rec.Len), true, false); err != nil {
				return err
			}
		case rbddiff.Write:
			for pos := int64(rec.Off); ; {
				n, err := r.Data(buf)
				if n > 0 {
					if err := v.WriteAt(buf[:n], pos, false); err != nil {
						return err
					}
					pos += int64(n)
				}
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return err
				}
			}
		}
		bar.Set(r.Offset())
	}
}
