package main

import (
	"errors"
	"fmt"

	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// snapshotRollbackCmd returns "hlfs snapshot rollback".
func (c *cli) snapshotRollbackCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rollback VOLUME@SNAPSHOT",
		Short: "make a volume read as one of its snapshots again",
		Long: `
Snapshot rollback makes VOLUME read exactly as SNAPSHOT: writes made since
that were not snapshotted are discarded. Later snapshots are kept, as a
branch of the snapshot tree ("hlfs snapshot ls VOLUME --tree"), and new
writes start a new branch from SNAPSHOT. The volume must not be served:
stop serving it, roll back, and serve it again.`,
		Args: positional("VOLUME@SNAPSHOT"),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.snapshotRollback(args[0])
		},
	}
}

func (c *cli) snapshotRollback(arg string) error {
	vol, snap, st, err := c.snapshotInStore(arg)
	if err != nil {
		return err
	}
	if err := lfs.Rollback(st, vol, snap); err != nil {
		var inUse *lfs.InUseError
		if errors.As(err, &inUse) {
			return fmt.Errorf("cannot roll back %s while it is served by pid %d on host %s; stop serving it first",
				vol, inUse.Owner.PID, inUse.Owner.Host)
		}
		return c.snapshotError(vol, snap, err)
	}
	fmt.Fprintf(c.stdout, "rolled back %s to %s@%s\n", vol, vol, snap)
	return nil
}
