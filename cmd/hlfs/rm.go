package main

import (
	"fmt"

	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// rmCmd returns "hlfs rm".
func (c *cli) rmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm VOLUME",
		Short: "remove a volume and all its data",
		Long: `
Rm removes a volume and all its data from the store. It refuses while the
volume is served. It also removes a damaged volume (one whose superblock is
missing or unreadable) and the objects an interrupted create, clone or rm
left, but never a folder holding anything hlfs does not write.`,
		Args: positional("VOLUME"),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.rm(args[0])
		},
	}
}

func (c *cli) rm(arg string) error {
	name, st, err := c.volumeInStore(arg)
	if err != nil {
		return err
	}
	if err := lfs.Remove(st, name); err != nil {
		return c.volumeError(name, err)
	}
	fmt.Fprintf(c.stdout, "removed %s\n", name)
	return nil
}
