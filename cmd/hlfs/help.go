package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/spf13/cobra"
)

// helpCmd returns "hlfs help". It stands in for cobra's, which answers an
// unknown command with the overview and exit 0.
func helpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND [SUBCOMMAND]]",
		Short: "show help on hlfs or on one command",
		Long: `
Help lists the commands, or with COMMAND shows how to use it. "hlfs COMMAND -h"
does the same. Commands with subcommands ("snapshot") take the subcommand
too: "hlfs help snapshot create".`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			target := cmd.Root()
			if len(args) > 0 {
				if target = subcommand(target, args[0]); target == nil {
					return cliutil.Usagef("unknown command %q (see 'hlfs help')", args[0])
				}
			}
			if len(args) >= 2 && target.HasSubCommands() {
				sub := subcommand(target, args[1])
				if sub == nil {
					return groupError(target, "unknown %s subcommand %q: want one of %s",
						commandName(target), args[1], subNames(target))
				}
				target, args = sub, args[1:]
			}
			if len(args) > 1 {
				return wantArgs("help", args, "COMMAND")
			}
			target.InitDefaultHelpFlag() // list --help as "hlfs COMMAND --help" does
			return target.Help()
		},
	}
}

// helpTemplate is the help of every command: what it does and how to call
// it, its subcommands, its flags. The overview ("hlfs help") starts with
// what hlfs is and ends with what holds for every command.
const helpTemplate = `{{if .HasParent}}Usage: {{.UseLine}}

{{trim .Long}}
{{else}}{{trim .Long}}

Usage: {{.UseLine}}
{{end}}{{if .HasAvailableSubCommands}}
{{if .HasParent}}Subcommands{{else}}Commands{{end}}:
{{commandTable .}}{{if .HasParent}}
Run 'hlfs help {{commandName .}} SUBCOMMAND' for details on one.
{{end}}{{end}}{{if .HasParent}}
Flags:
{{.LocalFlags.FlagUsages}}
Global flags:
{{.InheritedFlags.FlagUsages}}{{else}}
Global flags (before or after the command):
{{.LocalFlags.FlagUsages}}
Sizes are bytes with an optional binary suffix: 4K, 512M, 10G, 1T (K = KiB = 1024).
Run 'hlfs help COMMAND' for details on a command.
{{end}}`

// commandTable lists the subcommands of cmd with their summaries: by name
// in the overview, with their arguments in a group ("create VOLUME@SNAPSHOT").
func commandTable(cmd *cobra.Command) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 8, 3, ' ', 0)
	for _, sub := range cmd.Commands() {
		if !sub.IsAvailableCommand() && sub.Name() != "help" {
			continue
		}
		synopsis := sub.Name()
		if cmd.HasParent() {
			synopsis = sub.Use
		}
		fmt.Fprintf(tw, "  %s\t%s\n", synopsis, sub.Short)
	}
	tw.Flush()
	return b.String()
}
