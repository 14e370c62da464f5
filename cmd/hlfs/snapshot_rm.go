package main

import (
	"github.com/hlfs/hlfs/internal/admin"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// snapshotRmCmd returns "hlfs snapshot rm".
func (c *cli) snapshotRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm VOLUME@SNAPSHOT",
		Short: "remove a snapshot",
		Long: `
Snapshot rm removes snapshot SNAPSHOT of VOLUME, served or not. When the
volume is served, the serving process removes it and stops exporting it;
clients connected to VOLUME@SNAPSHOT read on until they disconnect. It
refuses, naming them, while clones made from the snapshot depend on it:
flatten or remove them first. The volume and its other snapshots are
unchanged.`,
		Args: positional("VOLUME@SNAPSHOT"),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.snapshotRm(args[0])
		},
	}
}

func (c *cli) snapshotRm(arg string) error {
	return c.snapshotOp(arg, admin.OpSnapshotRemove, "removed", func(v *lfs.Volume, snap string) error { return v.DeleteSnapshot(snap) })
}
