package main

import (
	"fmt"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/internal/progress"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// fsckCmd returns "hlfs fsck".
func (c *cli) fsckCmd() *cobra.Command {
	var clearLostFound bool
	cmd := &cobra.Command{
		Use:   "fsck VOLUME [--clear-lost-found]",
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

When the log ends before the end of a segment or before later segments (a
crash before they were durable, or damage), recovery never deletes them: it
moves later segments to VOLUME/lost+found/, and fsck reports them, and any
damaged record the log ends before, with their sizes. Once inspected,
--clear-lost-found removes what lost+found holds, then checks.`,
		Args: positional("VOLUME"),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.fsck(args[0], clearLostFound)
		},
	}
	cmd.Flags().BoolVar(&clearLostFound, "clear-lost-found", false, "remove what recovery set aside in VOLUME/lost+found/ first")
	return cmd
}

func (c *cli) fsck(arg string, clearLostFound bool) error {
	name, st, err := c.volumeInStore(arg)
	if err != nil {
		return err
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
	books := "space books recounted: " + cliutil.FormatSize(rep.LiveBytes) + " live"
	if rep.BooksExact {
		books += ", matching the volume's"
	} else {
		books += " (the volume's own wait for a recount)"
	}
	fmt.Fprintf(c.stdout, "%s: checked %d segments, %d records, %d extents, %s; %s\n", name,
		rep.Segments, rep.Records, rep.Extents, cliutil.FormatSize(rep.BytesChecked), books)
	for _, p := range rep.Problems {
		fmt.Fprintf(c.stdout, "%s: problem: %s\n", name, p)
	}
	if !rep.OK() {
		return fmt.Errorf("%s is damaged: %d problems found", name, len(rep.Problems))
	}
	fmt.Fprintf(c.stdout, "%s: ok\n", name)
	return nil
}
