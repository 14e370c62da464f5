package main

import (
	"flag"
	"fmt"

	"github.com/hlfs/hlfs/lfs"
)

var rmCmd = &command{
	name:    "rm",
	args:    "VOLUME",
	summary: "remove a volume and all its data",
	help: `
Rm removes a volume and all its data from the store. It refuses while the
volume is served.`,
	flags: func(fs *flag.FlagSet) func(*cli, []string) error {
		return func(c *cli, args []string) error {
			if err := wantArgs("rm", args, "VOLUME"); err != nil {
				return err
			}
			return c.rm(args[0])
		}
	},
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
