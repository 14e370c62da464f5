package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
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
	// that runs the command with its positional arguments. It is nil for a
	// command with subcommands.
	flags func(fs *flag.FlagSet) func(c *cli, args []string) error
	// subs are the subcommands of a command group ("snapshot"); their names
	// include the group's: "snapshot create".
	subs []*command
}

// commands lists every command in the order "hlfs help" shows them. It is
// filled in init because the help command refers to it.
var commands []*command

func init() {
	commands = []*command{
		createCmd, lsCmd, infoCmd, resizeCmd, rmCmd,
		snapshotCmd, cloneCmd, flattenCmd,
		serveCmd, importCmd, exportCmd, fsckCmd,
		gcCmd, duCmd,
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

// lookupSub returns the subcommand name of group, or nil.
func lookupSub(group *command, name string) *command {
	for _, sub := range group.subs {
		if sub.name == group.name+" "+name {
			return sub
		}
	}
	return nil
}

// subNames lists the subcommands of group as typed after its name.
func subNames(group *command) string {
	var names []string
	for _, sub := range group.subs {
		names = append(names, strings.TrimPrefix(sub.name, group.name+" "))
	}
	return strings.Join(names, ", ")
}

// newFlagSet returns cmd's flag set, with the global flags registered too
// so they may follow the command name, and the function that runs cmd (nil
// for a command group).
func (c *cli) newFlagSet(cmd *command) (*flag.FlagSet, func(c *cli, args []string) error) {
	fs := flag.NewFlagSet("hlfs "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.globalFlags(fs)
	if cmd.flags == nil {
		return fs, nil
	}
	return fs, cmd.flags(fs)
}

// runCommand parses cmd's flags, anywhere among args, and runs it.
func (c *cli) runCommand(cmd *command, args []string) error {
	if cmd.subs != nil {
		return c.runGroup(cmd, args)
	}
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

// runGroup runs the subcommand of group named by the first argument that is
// not a global flag.
func (c *cli) runGroup(group *command, args []string) error {
	// Not usageError: "snapshot: " would read as a package prefix.
	groupErr := func(format string, args ...any) error {
		return cliutil.Usagef("%s (see 'hlfs help %s')", fmt.Sprintf(format, args...), group.name)
	}
	fs, _ := c.newFlagSet(group)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printCommandUsage(c.stdout, group)
			return err
		}
		return groupErr("%s %s", group.name, flagError(err))
	}
	if fs.NArg() == 0 {
		return groupErr("%s needs a subcommand: one of %s", group.name, subNames(group))
	}
	sub := lookupSub(group, fs.Arg(0))
	if sub == nil {
		return groupErr("unknown %s subcommand %q: want one of %s", group.name, fs.Arg(0), subNames(group))
	}
	return c.runCommand(sub, fs.Args()[1:])
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

// volumeArg checks a VOLUME argument: names are lfs's to validate, and a
// snapshot (VOLUME@SNAP) is not a volume.
func volumeArg(arg string) (string, error) {
	if strings.Contains(arg, "@") {
		if _, _, err := lfs.ParseSnapshotRef(arg); err != nil {
			return "", err
		}
		return "", fmt.Errorf("%s is a snapshot, not a volume (see 'hlfs snapshot ls %s')", arg, arg[:strings.Index(arg, "@")])
	}
	if err := lfs.ValidateName(arg); err != nil {
		return "", err
	}
	return arg, nil
}

// snapshotArg checks a VOLUME@SNAPSHOT argument: both names follow the
// volume name rule.
func snapshotArg(arg string) (vol, snap string, err error) {
	vol, snap, ok := strings.Cut(arg, "@")
	if !ok {
		if lfs.ValidateName(arg) == nil {
			return "", "", fmt.Errorf("%s names no snapshot: want VOLUME@SNAPSHOT, like %s@snap1", arg, arg)
		}
		return "", "", fmt.Errorf("%q is not VOLUME@SNAPSHOT", arg)
	}
	if err := lfs.ValidateName(vol); err != nil {
		return "", "", err
	}
	if err := lfs.ValidateName(snap); err != nil {
		// The rule is the volume names' one; say it of the snapshot.
		rule := strings.TrimPrefix(cliutil.Message(err), "invalid volume name "+strconv.Quote(snap)+": ")
		return "", "", fmt.Errorf("invalid snapshot name %q in %s: %s", snap, arg, rule)
	}
	return lfs.ParseSnapshotRef(arg)
}

// volumeInStore checks a VOLUME argument (volumeArg) and opens the store.
func (c *cli) volumeInStore(arg string) (string, objstore.Store, error) {
	name, err := volumeArg(arg)
	if err != nil {
		return "", nil, err
	}
	st, err := c.openStore()
	return name, st, err
}

// snapshotInStore checks a VOLUME@SNAPSHOT argument (snapshotArg) and
// opens the store.
func (c *cli) snapshotInStore(arg string) (vol, snap string, st objstore.Store, err error) {
	if vol, snap, err = snapshotArg(arg); err != nil {
		return "", "", nil, err
	}
	st, err = c.openStore()
	return vol, snap, st, err
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
	case errors.Is(err, lfs.ErrHasClones):
		return withoutSentinel(err, lfs.ErrHasClones) // names the clones
	case errors.Is(err, lfs.ErrHasSnapshots):
		return withoutSentinel(err, lfs.ErrHasSnapshots) // names the snapshot
	}
	return err
}

// snapshotError makes the errors of the lfs calls on snapshot vol@snap read
// well on their own.
func (c *cli) snapshotError(vol, snap string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, lfs.ErrSnapshotNotFound):
		return fmt.Errorf("no snapshot %q of volume %s (see 'hlfs snapshot ls %s')", snap, vol, vol)
	case errors.Is(err, lfs.ErrSnapshotExists):
		return fmt.Errorf("snapshot %s@%s already exists", vol, snap)
	}
	return c.volumeError(vol, err)
}

// withoutSentinel returns the message of err, which wraps sentinel at its
// start ("lfs: clones depend on it: cannot remove vm1@s1: ..."), without the
// sentinel's words when more specific ones follow.
func withoutSentinel(err, sentinel error) error {
	if rest, ok := strings.CutPrefix(err.Error(), sentinel.Error()+": "); ok && rest != "" {
		return errors.New(rest)
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
	if cmd.subs != nil {
		fmt.Fprint(w, "\nSubcommands:\n")
		tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		for _, sub := range cmd.subs {
			fmt.Fprintf(tw, "  %s %s\t%s\n", strings.TrimPrefix(sub.name, cmd.name+" "), sub.args, sub.summary)
		}
		tw.Flush()
		fmt.Fprintf(w, "\nRun 'hlfs help %s SUBCOMMAND' for details on one.\n", cmd.name)
	}
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
