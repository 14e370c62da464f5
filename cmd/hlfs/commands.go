package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"text/template"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func init() {
	// "hlfs help" lists the commands in the order rootCmd adds them, the
	// everyday ones first, not sorted by name.
	cobra.EnableCommandSorting = false
	cobra.AddTemplateFuncs(template.FuncMap{"commandTable": commandTable, "commandName": commandName})
}

// rootCmd returns the command tree of one run of hlfs. Every run builds its
// own: the flags of each command are bound to variables of this run (and
// --store to c.store), which cobra never resets.
func (c *cli) rootCmd() *cobra.Command {
	c.store = c.getenv("HLFS_STORE")
	if c.store == "" {
		c.store = defaultStore
	}
	root := &cobra.Command{
		Use:  "hlfs [--store URI] COMMAND [ARGS]",
		Long: "hlfs keeps block volumes as logs in a store and serves them over NBD.",
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				cmd.SetOut(c.stderr)
				_ = cmd.Help()
				return errBareUsage
			}
			return cliutil.Usagef("unknown command %q (see 'hlfs help')", args[0])
		},
		// c.main prints errors, as one line; a usage error says where
		// the usage is rather than printing it.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetFlagErrorFunc(flagError)
	root.SetHelpTemplate(helpTemplate)
	root.PersistentFlags().StringVar(&c.store, "store", c.store,
		"store `URI`: file:///abs/path, file://rel/path or a plain path (env HLFS_STORE)")
	root.AddCommand(
		c.initCmd(), c.createCmd(), c.lsCmd(), c.infoCmd(), c.resizeCmd(), c.rmCmd(),
		c.snapshotCmd(), c.cloneCmd(), c.flattenCmd(),
		c.serveCmd(), c.attachCmd(), c.importCmd(), c.exportCmd(),
		c.diffCmd(), c.exportDiffCmd(), c.importDiffCmd(), c.fsckCmd(),
		c.gcCmd(), c.duCmd(), c.locateCmd(), c.scrubCmd(),
		c.versionCmd(),
	)
	addCompletionCmd(root)
	help := helpCmd()
	root.SetHelpCommand(help)
	root.AddCommand(help)
	forEachCommand(root, func(cmd *cobra.Command) { cmd.DisableFlagsInUseLine = true })
	return root
}

// forEachCommand calls fn on cmd and every command below it.
func forEachCommand(cmd *cobra.Command, fn func(*cobra.Command)) {
	fn(cmd)
	for _, sub := range cmd.Commands() {
		forEachCommand(sub, fn)
	}
}

// group makes cmd the group of the commands subs ("snapshot"). Run without
// one of them, it is a usage error that names them.
func group(cmd *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	cmd.AddCommand(subs...)
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name := commandName(cmd)
		if len(args) == 0 {
			return groupError(cmd, "%s needs a subcommand: one of %s", name, subNames(cmd))
		}
		return groupError(cmd, "unknown %s subcommand %q: want one of %s", name, args[0], subNames(cmd))
	}
	return cmd
}

// groupError returns a usage error of the group cmd that points at its
// help. Not usageError: "snapshot: " would read as a package prefix.
func groupError(cmd *cobra.Command, format string, args ...any) error {
	return cliutil.Usagef("%s (see 'hlfs help %s')", fmt.Sprintf(format, args...), commandName(cmd))
}

// subNames lists the subcommands of group as typed after its name.
func subNames(group *cobra.Command) string {
	var names []string
	for _, sub := range group.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	return strings.Join(names, ", ")
}

// subcommand returns the visible subcommand name of cmd, or nil.
func subcommand(cmd *cobra.Command, name string) *cobra.Command {
	for _, sub := range cmd.Commands() {
		if !sub.Hidden && (sub.Name() == name || sub.HasAlias(name)) {
			return sub
		}
	}
	return nil
}

// commandName is cmd as typed after "hlfs": "snapshot create".
func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// positional checks that a command gets exactly the positional arguments
// names ("VOLUME", "FILE"), with wantArgs's errors.
func positional(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		return wantArgs(commandName(cmd), args, names...)
	}
}

// flagError is the FlagErrorFunc of every command: it makes pflag's errors
// usage errors, worded as hlfs words them ("ls: unknown flag --nope (see
// 'hlfs help ls')").
func flagError(cmd *cobra.Command, err error) error {
	msg := flagMessage(err)
	switch {
	case !cmd.HasParent():
		return cliutil.Usagef("%s (see 'hlfs help')", msg)
	case cmd.HasSubCommands():
		return groupError(cmd, "%s %s", commandName(cmd), msg)
	}
	return usageError(commandName(cmd), "%s", msg)
}

// flagMessage words a pflag parse error the way flags are written in
// hlfs's help, with two dashes, and as hlfs did before pflag: "unknown flag
// --x", "missing value for --size", `invalid value "x" for --lease: parse
// error`.
func flagMessage(err error) string {
	var (
		unknown *pflag.NotExistError
		noValue *pflag.ValueRequiredError
		invalid *pflag.InvalidValueError
	)
	switch {
	case errors.As(err, &unknown):
		return "unknown flag --" + unknown.GetSpecifiedName()
	case errors.As(err, &noValue):
		return "missing value for --" + noValue.GetSpecifiedName()
	case errors.As(err, &invalid):
		kind, reason := "value", "parse error"
		if invalid.GetFlag().Value.Type() == "bool" {
			kind = "boolean value"
		}
		if errors.Is(err, strconv.ErrRange) {
			reason = "value out of range"
		}
		return fmt.Sprintf("invalid %s %q for --%s: %s", kind, invalid.GetValue(), invalid.GetFlag().Name, reason)
	}
	return err.Error() // "bad flag syntax: ---x"
}

// goFlagArgs rewrites the single-dash long flags of Go's flag package
// ("-store URI", "-size=1G", "-json"), which hlfs took until it moved to
// cobra and which scripts may still pass, into the two-dash form of pflag,
// which would read "-store" as the shorthands -s -t -o -r -e. It leaves
// alone "-h" (the one shorthand), "-", the value of a flag that takes one
// ("--size -1G" is a size to refuse, not a flag), everything after "--",
// and the shell's completion requests. Flags are looked up on the command
// the words so far name, as cobra finds it. The result is never nil.
func goFlagArgs(root *cobra.Command, args []string) []string {
	if len(args) > 0 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd) {
		return args
	}
	out := make([]string, 0, len(args))
	cmd, descend := root, true
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			return append(out, args[i:]...)
		}
		if len(arg) > 1 && arg[0] == '-' && arg[1] != '-' && arg != "-h" {
			arg = "-" + arg
		}
		out = append(out, arg)
		name, _, hasValue := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		switch {
		case strings.HasPrefix(arg, "--"):
			if f := lookupFlag(cmd, name); f != nil && f.NoOptDefVal == "" && !hasValue && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		case strings.HasPrefix(arg, "-"): // "-h", "-"
		case descend:
			if sub := subcommand(cmd, arg); sub != nil {
				cmd = sub
			} else {
				descend = false // the first positional argument
			}
		}
	}
	return out
}

// lookupFlag returns the flag name of cmd, its own or inherited, or nil.
func lookupFlag(cmd *cobra.Command, name string) *pflag.Flag {
	for c := cmd; c != nil; c = c.Parent() {
		if f := c.PersistentFlags().Lookup(name); f != nil {
			return f
		}
	}
	return cmd.Flags().Lookup(name)
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

// openStore opens the store named by --store, which must exist.
func (c *cli) openStore() (objstore.Store, error) {
	return c.indexed(openStore(c.store))
}

// createStore opens the store named by --store, creating it when missing.
func (c *cli) createStore() (objstore.Store, error) {
	return c.indexed(createStore(c.store))
}

// indexed starts keeping this process's store index object in st (lfs
// describes the volumes it changes there, for 'hlfs ls'); execute closes
// it when the command ends.
func (c *cli) indexed(st objstore.Store, err error) (objstore.Store, error) {
	if err != nil {
		return nil, err
	}
	c.indexes = append(c.indexes, lfs.OpenIndex(st, lfs.IndexOptions{Logger: slog.New(slog.NewTextHandler(c.stderr, nil))}))
	return st, nil
}

// volumeError makes the errors of the lfs calls on volume name read well on
// their own.
func (c *cli) volumeError(name string, err error) error {
	var (
		inUse *lfs.InUseError
		left  *lfs.LeftoverError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &inUse):
		return err // names the owner
	case errors.Is(err, lfs.ErrNotFound):
		// "lfs: no such volume: NAME", and what lfs says after the name.
		detail, _ := strings.CutPrefix(err.Error(), lfs.ErrNotFound.Error()+": "+name)
		if detail == err.Error() {
			detail = ""
		}
		return fmt.Errorf("no volume %q in store %s%s", name, c.store, detail)
	case errors.Is(err, lfs.ErrDamaged):
		return damagedError(name, err)
	case errors.As(err, &left):
		return fmt.Errorf("the store %s holds objects under %s/ but no superblock: %s (left by an interrupted create, clone or rm; 'hlfs rm %s' removes them)",
			c.store, name, strings.Join(left.Names, ", "), name)
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

// damagedError words the *lfs.DamagedError of volume name, with the way
// out.
func damagedError(name string, err error) error {
	var d *lfs.DamagedError
	if !errors.As(err, &d) {
		return err
	}
	return fmt.Errorf("volume %s is damaged: %s %s", name, d.Reason, damageAdvice(name))
}

// damageAdvice is the way out for a damaged volume name.
func damageAdvice(name string) string {
	return fmt.Sprintf("(see 'hlfs fsck %s'; 'hlfs fsck --repair %s' rebuilds the superblock, 'hlfs rm %s' removes the volume)",
		name, name, name)
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
