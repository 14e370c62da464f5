package main

import (
	"flag"

	"github.com/hlfs/hlfs/internal/admin"
	"github.com/hlfs/hlfs/lfs"
)

var snapshotRmCmd = &command{
	name:    "snapshot rm",
	args:    "VOLUME@SNAPSHOT",
	summary: "remove a snapshot",
	help: `
Snapshot rm removes snapshot SNAPSHOT of VOLUME, served or not. When the
volume is served, the serving process removes it and stops exporting it;
clients connected to VOLUME@SNAPSHOT read on until they disconnect. It
refuses, naming them, while clones made from the snapshot depend on it:
flatten or remove them first. The volume and its other snapshots are
unchanged.`,
	flags: func(fs *flag.FlagSet) func(*cli, []string) error {
		return func(c *cli, args []string) error {
			if err := wantArgs("snapshot rm", args, "VOLUME@SNAPSHOT"); err != nil {
				return err
			}
			return c.snapshotRm(args[0])
		}
	},
}

func (c *cli) snapshotRm(arg string) error {
	return c.snapshotOp(arg, admin.OpSnapshotRemove, "removed", func(v *lfs.Volume, snap string) error { return v.DeleteSnapshot(snap) })
}
