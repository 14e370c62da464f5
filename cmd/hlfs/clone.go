package main

import (
	"errors"
	"fmt"

	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// cloneCmd returns "hlfs clone".
func (c *cli) cloneCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "clone VOLUME@SNAPSHOT NEWVOLUME",
		Short: "make a new volume from a snapshot",
		Long: `
Clone creates NEWVOLUME, a writable volume that starts as an exact copy of
snapshot VOLUME@SNAPSHOT. It copies no data: the clone reads what it has not
overwritten from the snapshot's volume, so it costs nothing until it
diverges, and the snapshot cannot be removed while the clone depends on it
("hlfs flatten NEWVOLUME" ends that). The source may be served meanwhile.`,
		Args: positional("VOLUME@SNAPSHOT", "NEWVOLUME"),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.clone(args[0], args[1])
		},
	}
}

func (c *cli) clone(srcArg, newArg string) error {
	vol, snap, err := snapshotArg(srcArg)
	if err != nil {
		return err
	}
	newVol, err := volumeArg(newArg)
	if err != nil {
		return err
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	if err := lfs.Clone(st, vol, snap, newVol); err != nil {
		if errors.Is(err, lfs.ErrExists) {
			return c.volumeError(newVol, err)
		}
		return c.snapshotError(vol, snap, err)
	}
	fmt.Fprintf(c.stdout, "created %s from %s@%s\n", newVol, vol, snap)
	return nil
}
