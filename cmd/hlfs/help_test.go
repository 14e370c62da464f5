package main

import (
	"strings"
	"testing"
)

// Every command has a help page, reachable three ways, on stdout.
func TestHelpEveryCommand(t *testing.T) {
	store, _ := testStore(t)
	for _, cmd := range commands {
		want := "Usage: hlfs " + cmd.name + " "
		for _, args := range [][]string{{"help", cmd.name}, {cmd.name, "-h"}, {cmd.name, "--help"}} {
			r := hlfs(t, store, args...)
			if r.code != 0 || !strings.HasPrefix(r.stdout, want) || !strings.Contains(r.stdout, "--store URI") || r.stderr != "" {
				t.Errorf("%q: exit %d stdout %q stderr %q", args, r.code, r.stdout, r.stderr)
			}
		}
		if cmd.summary == "" || strings.TrimSpace(cmd.help) == "" {
			t.Errorf("%s has no summary or help", cmd.name)
		}
	}
}

func TestHelpErrors(t *testing.T) {
	store, _ := testStore(t)
	wantError(t, hlfs(t, store, "help", "nope"), 2, `unknown command "nope"`, "'hlfs help'")
	wantError(t, hlfs(t, store, "help", "ls", "rm"), 2, `unexpected argument "rm"`)
}
