package main

import (
	"flag"

	"github.com/hlfs/hlfs/internal/cliutil"
)

var helpCmd = &command{
	name:    "help",
	args:    "[COMMAND]",
	summary: "show help on hlfs or on one command",
	help: `
Help lists the commands, or with COMMAND shows how to use it. "hlfs COMMAND -h"
does the same.`,
	flags: func(fs *flag.FlagSet) func(*cli, []string) error {
		return func(c *cli, args []string) error {
			switch len(args) {
			case 0:
				c.printUsage(c.stdout)
				return nil
			case 1:
				cmd := lookup(args[0])
				if cmd == nil {
					return cliutil.Usagef("unknown command %q (see 'hlfs help')", args[0])
				}
				c.printCommandUsage(c.stdout, cmd)
				return nil
			}
			return wantArgs("help", args, "COMMAND")
		}
	},
}
