package main

import (
	"flag"
	"fmt"

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
	vol, snap, err := snapshotArg(arg)
	if err != nil {
		return err
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	req := admin.Request{Op: admin.OpSnapshotRemove, Volume: vol, Snapshot: snap}
	err = c.onVolume(st, vol, req, nil, func(v *lfs.Volume) error { return v.DeleteSnapshot(snap) })
	if err != nil {
		return c.snapshotError(vol, snap, err)
	}
	fmt.Fprintf(c.stdout, "removed snapshot %s@%s\n", vol, snap)
	return nil
}
