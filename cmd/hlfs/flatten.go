package main

import (
	"errors"
	"fmt"

	"github.com/hlfs/hlfs/internal/progress"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// flattenCmd returns "hlfs flatten".
func (c *cli) flattenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "flatten VOLUME",
		Short: "make a clone independent of its source snapshot",
		Long: `
Flatten copies into the clone VOLUME the data it still reads from its source
snapshot, so that it no longer depends on it: the snapshot can then be
removed. The clone reads the same before and after. It takes as long as
copying the data the clone shares with the snapshot, and the volume must not
be served meanwhile. It refuses while clones of the volume read through it
(flatten them first) and while the volume's own snapshots share data with
its source (remove them first).`,
		Args: positional("VOLUME"),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.flatten(args[0])
		},
	}
}

func (c *cli) flatten(arg string) error {
	name, st, err := c.volumeInStore(arg)
	if err != nil {
		return err
	}
	info, err := lfs.Stat(st, name)
	if err != nil {
		return c.volumeError(name, err)
	}
	var bar *progress.Bar
	err = lfs.Flatten(st, name, func(done, total int64) {
		if bar == nil {
			bar = progress.New(c.stderr, "flattening "+name, total)
		}
		bar.Set(done)
	})
	bar.Done()
	var inUse *lfs.InUseError
	if errors.As(err, &inUse) {
		return fmt.Errorf("cannot flatten %s while it is served by pid %d on host %s; stop serving it first",
			name, inUse.Owner.PID, inUse.Owner.Host)
	}
	if errors.Is(err, lfs.ErrNotClone) {
		return fmt.Errorf("%s is not a clone: nothing to flatten", name)
	}
	if err != nil {
		return c.volumeError(name, err)
	}
	fmt.Fprintf(c.stdout, "flattened %s: it no longer depends on %s\n", name, info.Source)
	return nil
}
