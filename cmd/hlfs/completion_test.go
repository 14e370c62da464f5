package main

import (
	"bytes"
	"strings"
	"testing"
)

// "hlfs completion SHELL" prints that shell's script, which asks
// "hlfs __complete" for the words.
func TestCompletion(t *testing.T) {
	store, _ := testStore(t)
	for _, tc := range []struct {
		shell string
		want  []string // what marks the script as that shell's, for hlfs
	}{
		{"bash", []string{"# bash completion V2 for hlfs", "complete -o default -F __start_hlfs hlfs", "__complete"}},
		{"zsh", []string{"#compdef hlfs\n", "compdef _hlfs hlfs", "__complete"}},
		{"fish", []string{"# fish completion for hlfs", "complete -c hlfs ", "__complete"}},
		{"powershell", []string{"# powershell completion for hlfs", "Register-ArgumentCompleter -CommandName 'hlfs'", "__complete"}},
	} {
		out := mustHLFS(t, store, "completion", tc.shell)
		if strings.Count(out, "\n") < 100 {
			t.Errorf("%s: a %d-line script:\n%s", tc.shell, strings.Count(out, "\n"), out)
		}
		for _, s := range tc.want {
			if !strings.Contains(out, s) {
				t.Errorf("%s: script lacks %q", tc.shell, s)
			}
		}
	}
	wantError(t, hlfs(t, store, "completion"), 2, "completion needs a subcommand: one of bash, zsh, fish, powershell")
	wantError(t, hlfs(t, store, "completion", "tcsh"), 2, `unknown completion subcommand "tcsh"`)
	wantError(t, hlfs(t, store, "completion", "bash", "x"), 2, `completion bash: unexpected argument "x"`)
}

// What the scripts ask: the commands, subcommands and flags that complete
// a word, one a line with its summary, then the directive.
func TestCompletionRequests(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", ""}, []string{"create\tcreate an empty volume\n", "snapshot\t", "completion\t", "help\t"}},
		{[]string{"__complete", "snapshot", "r"}, []string{"rm\tremove a snapshot\n", "rollback\t"}},
		{[]string{"__complete", "create", "v", "--s"}, []string{"--size\t", "--store\t"}},
		{[]string{"__complete", "serve", "--gc-"}, []string{"--gc-rate\t", "--gc-trigger\t"}},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != 0 || !strings.HasSuffix(stdout.String(), ":4\n") {
			t.Errorf("%q: exit %d stdout %q stderr %q", tc.args, code, stdout.String(), stderr.String())
		}
		for _, s := range tc.want {
			if !strings.Contains(stdout.String(), s) {
				t.Errorf("%q: %q lacks %q", tc.args, stdout.String(), s)
			}
		}
	}
}
