package main

import (
	"flag"

	"github.com/hlfs/hlfs/internal/cliutil"
)

var helpCmd = &command{
	name:    "help",
	args:    "[COMMAND [SUBCOMMAND]]",
	summary: "show help on hlfs or on one command",
	help: `
Help lists the commands, or with COMMAND shows how to use it. "hlfs COMMAND -h"
does the same. Commands with subcommands ("snapshot") take the subcommand
too: "hlfs help snapshot create".`,
	flags: func(fs *flag.FlagSet) func(*cli, []string) error {
		return func(c *cli, args []string) error {
			if len(args) == 0 {
				c.printUsage(c.stdout)
				return nil
			}
			cmd := lookup(args[0])
			if cmd == nil {
				return cliutil.Usagef("unknown command %q (see 'hlfs help')", args[0])
			}
			if len(args) >= 2 && cmd.subs != nil {
				sub := lookupSub(cmd, args[1])
				if sub == nil {
					return cliutil.Usagef("unknown %s subcommand %q: want one of %s (see 'hlfs help %s')",
						cmd.name, args[1], subNames(cmd), cmd.name)
				}
				cmd, args = sub, args[1:]
			}
			if len(args) > 1 {
				return wantArgs("help", args, "COMMAND")
			}
			c.printCommandUsage(c.stdout, cmd)
			return nil
		}
	},
}
