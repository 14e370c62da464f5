// Command hlfs manages hlfs volumes in a store and serves them over NBD.
//
//	hlfs [--store URI] COMMAND [ARGS]
//
// Run "hlfs help" for the list of commands. main only wires the command tree
// (commands.go, built on cobra); each command lives in its own file.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/internal/membudget"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args (without the program name), writing
// to stdout and stderr, and returns the exit code: 0 on success, 1 when the
// command failed, 2 for a usage error. SIGINT and SIGTERM cancel the
// command's context.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := newCLI(ctx, stdout, stderr, os.Getenv)
	c.releaseSignals = stop
	return c.main(args)
}

// defaultStore is the store used without --store and HLFS_STORE.
const defaultStore = "file://./hlfs-data"

// cli is one invocation of the command line: its streams, context and the
// global flags.
type cli struct {
	ctx    context.Context
	stdin  io.Reader // import and import-diff read "-" from it
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	// releaseSignals restores the default handling of SIGINT and SIGTERM,
	// so that a second ^C during a slow shutdown kills the process. Never nil.
	releaseSignals func()

	// store is the --store flag.
	store string
	// journalDir and lease are serve's --journal and --lease flags.
	journalDir string
	lease      time.Duration
	// cleaner is serve's background cleaner configuration; nil: --no-gc.
	cleaner *lfs.CleanerOptions
	// scrubInterval and scrubRate are serve's background scrub (0: off).
	scrubInterval time.Duration
	scrubRate     int64
	// indexes are the store index writers the command opened (indexed).
	indexes []*lfs.Index
	// memory is serve's --memory budget, shared by every volume it opens
	// and its NBD server.
	memory *membudget.Budget
}

func newCLI(ctx context.Context, stdout, stderr io.Writer, getenv func(string) string) *cli {
	return &cli{ctx: ctx, stdin: os.Stdin, stdout: stdout, stderr: stderr, getenv: getenv, releaseSignals: func() {}}
}

// main runs args and reports errors on stderr as one line.
func (c *cli) main(args []string) int {
	return c.execute(c.rootCmd(), args)
}

// execute runs args with the command tree root and reports errors on
// stderr as one line "hlfs: ...": cobra prints none of its own.
func (c *cli) execute(root *cobra.Command, args []string) (code int) {
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(c.stderr, "hlfs: internal error: %v (please report this bug)\n", p)
			if c.getenv("HLFS_DEBUG") != "" {
				c.stderr.Write(debug.Stack())
			}
			code = cliutil.ExitError
		}
	}()
	root.SetArgs(goFlagArgs(root, args)) // never nil: cobra would read os.Args
	err := root.ExecuteContext(c.ctx)
	for _, x := range c.indexes {
		_ = x.Close() // failures are logged; listings then read those volumes
	}
	if errors.Is(err, errBareUsage) {
		return cliutil.ExitUsage // the usage printed is the message
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "hlfs: %s\n", cliutil.Message(err))
	}
	return cliutil.ExitCode(err)
}

// errBareUsage is returned when hlfs runs without a command, after the
// usage was printed on stderr.
var errBareUsage = errors.New("no command given")
