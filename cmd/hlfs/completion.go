package main

import "github.com/spf13/cobra"

// addCompletionCmd adds cobra's "hlfs completion bash|zsh|fish|powershell",
// which prints a script that completes hlfs's commands and flags in that
// shell, as a group whose errors read like the other commands'.
func addCompletionCmd(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	completion := subcommand(root, "completion")
	completion.Short = "print a script that completes hlfs's commands in a shell"
	completion.Use = "completion SHELL"
	group(completion)
	for _, shell := range completion.Commands() {
		shell.Args = positional()
	}
}
