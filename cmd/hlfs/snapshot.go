package main

import "github.com/spf13/cobra"

// snapshotCmd returns "hlfs snapshot", the group of the snapshot commands.
func (c *cli) snapshotCmd() *cobra.Command {
	return group(&cobra.Command{
		Use:   "snapshot SUBCOMMAND [ARGS]",
		Short: "create, list, remove and roll back to snapshots",
		Long: `
A snapshot is a read-only, point-in-time image of a volume, named
VOLUME@SNAPSHOT; snapshot names follow the rules of volume names. Taking one
costs one small record, whatever the size of the volume. Snapshots can be
taken and removed while the volume is served: the command then asks the
serving process through its admin socket. "hlfs serve" exports snapshots
read-only, and "hlfs clone" makes a new writable volume from one.`,
	}, c.snapshotCreateCmd(), c.snapshotLsCmd(), c.snapshotRmCmd(), c.snapshotRollbackCmd())
}
