package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// commandTree returns every command below hlfs that help shows, groups and
// their subcommands included, and the completion command cobra adds.
func commandTree(t *testing.T) []*cobra.Command {
	t.Helper()
	c := newCLI(context.Background(), &bytes.Buffer{}, &bytes.Buffer{}, func(string) string { return "" })
	var cmds []*cobra.Command
	forEachCommand(c.rootCmd(), func(cmd *cobra.Command) {
		if cmd.HasParent() && !cmd.Hidden {
			cmds = append(cmds, cmd)
		}
	})
	if len(cmds) < 20 {
		t.Fatalf("only %d commands in the tree", len(cmds))
	}
	return cmds
}

// Every command has a help page, reachable three ways, on stdout: its
// usage line first, its flags and the global ones.
func TestHelpEveryCommand(t *testing.T) {
	store, _ := testStore(t)
	for _, cmd := range commandTree(t) {
		path := strings.Fields(commandName(cmd))
		want := "Usage: " + cmd.UseLine() + "\n"
		if !strings.HasPrefix(want, "Usage: hlfs "+strings.Join(path, " ")) {
			t.Errorf("%q: usage line %q", path, want)
		}
		for _, args := range [][]string{
			append([]string{"help"}, path...),
			append(append([]string{}, path...), "-h"),
			append(append([]string{}, path...), "--help"),
		} {
			r := hlfs(t, store, args...)
			if r.code != 0 || !strings.HasPrefix(r.stdout, want) || !strings.Contains(r.stdout, "--store URI") ||
				!strings.Contains(r.stdout, "-h, --help") || r.stderr != "" {
				t.Errorf("%q: exit %d stdout %q stderr %q", args, r.code, r.stdout, r.stderr)
			}
		}
		if cmd.Short == "" || strings.TrimSpace(cmd.Long) == "" {
			t.Errorf("%s has no summary or help", commandName(cmd))
		}
	}
}

// The help of a command is its Long text, as written.
func TestHelpShowsLong(t *testing.T) {
	store, _ := testStore(t)
	out := mustHLFS(t, store, "help", "du")
	for _, s := range []string{
		"Usage: hlfs du VOLUME [--json]\n\nDu shows how a volume's space in the store is used:\n\n  provisioned      the volume's size\n",
		"works while the volume is served.\n\nFlags:\n",
		"\n      --json   print JSON (sizes in bytes)\n",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("help du lacks %q:\n%s", s, out)
		}
	}
}

func TestHelpErrors(t *testing.T) {
	store, _ := testStore(t)
	wantError(t, hlfs(t, store, "help", "nope"), 2, `unknown command "nope"`, "'hlfs help'")
	wantError(t, hlfs(t, store, "help", "ls", "rm"), 2, `unexpected argument "rm"`)
}
