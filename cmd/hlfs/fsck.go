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
	return &cobra.Command{
		Use:   "fsck VOLUME",
		Short: "check a volume for damage",
		Long: `
Fsck reads all of a volume's log and checkpoints and checks every checksum,
the chaining of the log segments, that every checkpoint kept recovers the
same content (the whole log, when the cleaner has not deleted its start),
that every extent of the volume and of its snapshots points at a record that
holds it, and recounts the space books (live bytes per segment) and compares
them with the volume's. It changes nothing (while it runs, a read lease keeps
a serving process from deleting segments it reads). It prints what it
checked and every problem found, and exits 1 when the volume is damaged.`,
		Args: positional("VOLUME"),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.fsck(args[0])
		},
	}
}

func (c *cli) fsck(arg string) error {
	name, st, err := c.volumeInStore(arg)
	if err != nil {
		return err
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
