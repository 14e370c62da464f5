package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/internal/progress"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// fsckCmd returns "hlfs fsck".
func (c *cli) fsckCmd() *cobra.Command {
	var clearLostFound bool
	cmd := &cobra.Command{
		Use:   "fsck VOLUME [--repair] [--clear-lost-found]",
		Short: "check a volume for damage",
		Long: `
Fsck reads all of a volume's log and checkpoints and checks every checksum,
the chaining of the log segments, that every checkpoint kept recovers the
same content (the whole log, when the cleaner has not deleted its start),
that every extent of the volume and of its snapshots points at a record that
holds it, and recounts the space books (live bytes per segment) and compares
them with the volume's. It changes nothing (while it runs, a read lease keeps
a serving process from deleting segments it reads). It prints what it
checked and every problem found, and exits 1 when the volume is damaged.

A volume whose superblock is missing, cut short or unreadable while its log
remains is damaged: fsck says so and how to repair it. With --repair (refused
while the volume is served) fsck rebuilds such a superblock from the newest
checkpoint and the segment headers, prints every field with where it came
from (the block size and segment size are recorded nowhere else: it takes
the defaults, see docs/format.md), then checks the volume as usual.

When the log ends before the end of a segment or before later segments (a
crash before they were durable, or damage), recovery never deletes them: it
moves later segments to VOLUME/lost+found/, and fsck reports them, and any
damaged record the log ends before, with their sizes. Once inspected,
--clear-lost-found removes what lost+found holds, then checks.`,
		Args: positional("VOLUME"),
	}
	repair := cmd.Flags().Bool("repair", false, "rebuild a missing or damaged superblock first")
	cmd.Flags().BoolVar(&clearLostFound, "clear-lost-found", false, "remove what recovery set aside in VOLUME/lost+found/ first")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		return c.fsck(args[0], *repair, clearLostFound)
	}
	return cmd
}

func (c *cli) fsck(arg string, repair, clearLostFound bool) error {
	name, st, err := c.volumeInStore(arg)
	if err != nil {
		return err
	}
	if repair {
		if err := c.repairSuperblock(st, name); err != nil {
			return err
		}
	}
	if clearLostFound {
		n, size, err := lfs.ClearLostFound(st, name)
		if err != nil {
			return c.volumeError(name, err)
		}
		fmt.Fprintf(c.stdout, "%s: removed %d objects (%s) from lost+found\n", name, n, cliutil.FormatSize(size))
	}
	var bar *progress.Bar
	rep, err := lfs.Fsck(st, name, func(done, total int64) {
		if bar == nil {
			bar = progress.New(c.stderr, "checking "+name, total)
		}
		bar.Set(done)
	})
	bar.Done()
	if err != nil {
		return c.volumeError(name, err)
	}
	if rep.SuperblockDamaged {
		for _, p := range rep.Problems {
			fmt.Fprintf(c.stdout, "%s: problem: %s\n", name, cliutil.Message(errors.New(p)))
		}
		fmt.Fprintf(c.stdout, "%s: repair: 'hlfs fsck --repair %s' rebuilds the superblock from the newest checkpoint and the segment headers; 'hlfs rm %s' removes the volume\n",
			name, name, name)
		return fmt.Errorf("%s is damaged: its superblock is missing or unreadable", name)
	}
	books := "space books recounted: " + cliutil.FormatSize(rep.LiveBytes) + " live"
	if rep.BooksExact {
		books += ", matching the volume's"
	} else {
		books += " (the volume's own wait for a recount)"
	}
	fmt.Fprintf(c.stdout, "%s: checked %d segments, %d records, %d extents, %s; %s\n", name,
		rep.Segments, rep.Records, rep.Extents, cliutil.FormatSize(rep.BytesChecked), books)
	for _, p := range rep.Problems {
		fmt.Fprintf(c.stdout, "%s: problem: %s\n", name, cliutil.Message(errors.New(p)))
	}
	if !rep.OK() {
		return fmt.Errorf("%s is damaged: %d problems found", name, len(rep.Problems))
	}
	fmt.Fprintf(c.stdout, "%s: ok\n", name)
	return nil
}

// repairSuperblock rebuilds the superblock of volume name if it is damaged
// and says what it did, field by field.
func (c *cli) repairSuperblock(st objstore.Store, name string) error {
	rep, err := lfs.RepairSuperblock(st, name)
	if err != nil {
		if lfs.IsCorruption(err) && !errors.Is(err, lfs.ErrDamaged) {
			return fmt.Errorf("cannot repair %s: %s", name, cliutil.Message(err))
		}
		return c.volumeError(name, err)
	}
	if !rep.Repaired {
		fmt.Fprintf(c.stdout, "%s: the superblock is intact: nothing to repair\n", name)
		return nil
	}
	onOff := map[bool]string{false: "off", true: "on"}
	fmt.Fprintf(c.stdout, "%s: rebuilt the superblock (it was damaged: %s):\n", name, rep.Damage)
	for _, f := range [][2]string{
		{fmt.Sprintf("uid %016x", rep.UID), rep.UIDFrom},
		{"size " + sizeString(rep.Size), rep.SizeFrom},
		{"block size " + cliutil.FormatSize(int64(rep.BlockSize)), rep.BlockSizeFrom},
		{"segment size " + cliutil.FormatSize(int64(rep.SegmentSize)), rep.SegmentFrom},
		{"compress " + onOff[rep.Compress], rep.CompressFrom},
		{"created " + rep.Created.Local().Format(time.RFC3339), rep.CreatedFrom},
		{fmt.Sprintf("replication %d", rep.Replication), rep.ReplicationFrom},
	} {
		fmt.Fprintf(c.stdout, "%s:   %s: %s\n", name, f[0], f[1])
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(c.stdout, "%s: note: %s\n", name, n)
	}
	if rep.SizeLowerBound {
		fmt.Fprintf(c.stdout, "%s: the size is a lower bound: if the volume was larger, grow it with 'hlfs resize %s --size SIZE'\n", name, name)
	}
	return nil
}
