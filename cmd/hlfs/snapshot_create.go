package main

import (
	"fmt"

	"github.com/hlfs/hlfs/internal/admin"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// snapshotCreateCmd returns "hlfs snapshot create".
func (c *cli) snapshotCreateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "create VOLUME@SNAPSHOT",
		Short: "snapshot a volume, served or not",
		Long: `
Snapshot create makes snapshot SNAPSHOT of VOLUME: a read-only image holding
every write acknowledged before the command started. It works whether or not
the volume is served: when it is, the serving process takes the snapshot
(through the admin socket its owner lock names) and exports it at once as
VOLUME@SNAPSHOT if it serves every snapshot. It costs one small record,
whatever the size of the volume.`,
		Args: positional("VOLUME@SNAPSHOT"),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.snapshotCreate(args[0])
		},
	}
}

func (c *cli) snapshotCreate(arg string) error {
	return c.snapshotOp(arg, admin.OpSnapshotCreate, "created", func(v *lfs.Volume, snap string) error { return v.CreateSnapshot(snap) })
}

// snapshotOp carries out a snapshot operation on VOLUME@SNAPSHOT arg, in
// this process or, when the volume is served, through the server's admin
// socket, then says what it did.
func (c *cli) snapshotOp(arg, op, did string, fn func(v *lfs.Volume, snap string) error) error {
	vol, snap, st, err := c.snapshotInStore(arg)
	if err != nil {
		return err
	}
	req := admin.Request{Op: op, Volume: vol, Snapshot: snap}
	err = c.onVolume(st, vol, req, nil, func(v *lfs.Volume) error { return fn(v, snap) })
	if err != nil {
		return c.snapshotError(vol, snap, err)
	}
	fmt.Fprintf(c.stdout, "%s snapshot %s@%s\n", did, vol, snap)
	return nil
}
