package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/lfs"
)

// command is one subcommand of hlfs.
type command struct {
	name    string // as typed: "create"
	args    string // synopsis after "hlfs NAME"
	summary string // one line for "hlfs help"
	help    string // paragraphs for "hlfs help NAME"
	// flags registers the command's own flags on fs and returns the function
	// that runs the command with its positional arguments.
	flags func(fs *flag.FlagSet) func(c *cli, args []string) error
}

// commands lists every command in the order "hlfs help" shows them. It is
// filled in init because the help command refers to it.
var commands []*command

func init() {
	commands = []*command{
		createCmd, lsCmd, infoCmd, resizeCmd, rmCmd,
		serveCmd, importCmd, exportCmd, fsckCmd,
		versionCmd, helpCmd,
	}
}

// lookup returns the named command or nil.
func lookup(name string) *command {
	for _, cmd := range commands {
		if cmd.name == name {
			return cmd
		}
	}
	return nil
}

// newFlagSet returns cmd's flag set, with the global flags registered too
// so they may follow the command name, and the function that runs cmd.
func (c *cli) newFlagSet(cmd *command) (*flag.FlagSet, func(c *cli, args []string) error) {
	fs := flag.NewFlagSet("hlfs "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.globalFlags(fs)
	return fs, cmd.flags(fs)
}

// runCommand parses cmd's flags, anywhere among args, and runs it.
func (c *cli) runCommand(cmd *command, args []string) error {
	fs, runFn := c.newFlagSet(cmd)
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.printCommandUsage(c.stdout, cmd)
		return err
	}
	if err != nil {
		return usageError(cmd.name, "%s", flagError(err))
	}
	return runFn(c, pos)
}

// parseInterspersed parses args with fs, allowing flags after positional
// arguments ("create demo --size 1G"), and returns the positional arguments.
// Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// flagError rewords the flag package's errors the way flags are written in
// hlfs's help: with two dashes.
func flagError(err error) string {
	msg := err.Error()
	for _, r := range []struct{ from, to string }{
		{"flag provided but not defined: -", "unknown flag --"},
		{"flag needs an argument: -", "missing value for --"},
		{"bad flag syntax: ", "bad flag syntax: "},
	} {
		if name, ok := strings.CutPrefix(msg, r.from); ok {
			return r.to + name
		}
	}
	if strings.HasPrefix(msg, "invalid ") {
		return strings.Replace(msg, " for flag -", " for --", 1)
	}
	return msg
}

// usageError returns a usage error of command name that points at its help.
func usageError(name, format string, args ...any) error {
	return cliutil.Usagef("%s: %s (see 'hlfs help %s')", name, fmt.Sprintf(format, args...), name)
}

// wantArgs checks that args holds exactly the positional arguments named by
// names ("VOLUME", "FILE").
func wantArgs(cmd string, args []string, names ...string) error {
	if len(args) < len(names) {
		return usageError(cmd, "missing %s", strings.Join(names[len(args):], " and "))
	}
	if len(args) > len(names) {
		return usageError(cmd, "unexpected argument %q", args[len(names)])
	}
	return nil
}

// sizeFlag parses the value of a size flag; empty means the flag was not
// given, which is an error when required.
func sizeFlag(cmd, flagName, value string, required bool) (int64, error) {
	if value == "" {
		if required {
			return 0, usageError(cmd, "--%s is required", flagName)
		}
		return 0, nil
	}
	n, err := cliutil.ParseSize(value)
	if err != nil {
		return 0, usageError(cmd, "--%s: %v", flagName, err)
	}
	return n, nil
}

// sizeString shows a size that is not a round number both ways:
// "1000 bytes", "1.5 GiB (1610612736 bytes)".
func sizeString(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%s (%d bytes)", cliutil.FormatSize(n), n)
}

// volumeArg checks a VOLUME argument: names are lfs's to validate, and "@"
// is kept for snapshots.
func volumeArg(arg string) (string, error) {
	if strings.Contains(arg, "@") {
		return "", fmt.Errorf("snapshots are not supported yet (in %q)", arg)
	}
	if err := lfs.ValidateName(arg); err != nil {
		return "", err
	}
	return arg, nil
}

// openStore opens the store named by --store.
func (c *cli) openStore() (objstore.Store, error) {
	return openStore(c.store)
}

// volumeError makes the errors of the lfs calls on volume name read well on
// their own.
func (c *cli) volumeError(name string, err error) error {
	var inUse *lfs.InUseError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &inUse):
		return err // names the owner
	case errors.Is(err, lfs.ErrNotFound):
		return fmt.Errorf("no volume %q in store %s", name, c.store)
	case errors.Is(err, lfs.ErrExists):
		return fmt.Errorf("volume %q already exists in store %s", name, c.store)
	case errors.Is(err, lfs.ErrInUse):
		return fmt.Errorf("volume %q is in use: %s", name, cliutil.Message(err))
	}
	return err
}

// printUsage writes the overview of all commands.
func (c *cli) printUsage(w io.Writer) {
	fmt.Fprint(w, `hlfs keeps block volumes as logs in a store and serves them over NBD.

Usage: hlfs [--store URI] COMMAND [ARGS]

Commands:
`)
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	for _, cmd := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", cmd.name, cmd.summary)
	}
	tw.Flush()
	fmt.Fprint(w, "\nGlobal flags (before or after the command):\n")
	fs := flag.NewFlagSet("hlfs", flag.ContinueOnError)
	store := c.store
	c.globalFlags(fs)
	c.store = store
	printFlags(w, fs)
	fmt.Fprint(w, "\nSizes are bytes with an optional binary suffix: 4K, 512M, 10G, 1T (K = KiB = 1024).\n")
	fmt.Fprint(w, "Run 'hlfs help COMMAND' for details on a command.\n")
}

// printCommandUsage writes the help of one command.
func (c *cli) printCommandUsage(w io.Writer, cmd *command) {
	store := c.store
	fs, _ := c.newFlagSet(cmd)
	c.store = store
	fmt.Fprintf(w, "Usage: hlfs %s %s\n\n", cmd.name, cmd.args)
	fmt.Fprintf(w, "%s\n", strings.TrimSpace(cmd.help))
	fmt.Fprint(w, "\nFlags:\n")
	printFlags(w, fs)
}

// printFlags lists fs's flags as "--name VALUE  usage (default D)".
func printFlags(w io.Writer, fs *flag.FlagSet) {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		if arg != "" {
			arg = " " + arg
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(tw, "  --%s%s\t%s%s\n", f.Name, arg, usage, def)
	})
	tw.Flush()
}
