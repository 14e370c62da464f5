package cliutil

import (
	"errors"
	"fmt"
	"strings"
)

// UsageError is an error in how a command was invoked: an unknown command or
// flag, a missing or extra argument, a flag value that does not parse. The
// command line exits with code 2 for it, 1 for every other error.
type UsageError struct {
	// Err says what is wrong, in one line.
	Err error
}

// Error implements error.
func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns e.Err.
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// Exit codes of the hlfs command.
const (
	ExitOK    = 0 // success
	ExitError = 1 // the command failed
	ExitUsage = 2 // the command line was wrong
)

// ExitCode returns ExitOK for nil, ExitUsage for errors wrapping a
// *UsageError and ExitError otherwise.
func ExitCode(err error) int {
	var ue *UsageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	}
	return ExitError
}

// packagePrefixes are the "pkg: " prefixes hlfs packages put on their
// errors; at the start of a message shown to a user they add nothing.
var packagePrefixes = []string{"hlfs: ", "lfs: ", "objstore: ", "nbdserver: ", "segment: ", "snapshot: ", "hdfsbackend: ", "rbddiff: "}

// Message renders err as the single line printed after "hlfs: ": leading
// package prefixes are dropped and line breaks become "; ".
func Message(err error) string {
	s := err.Error()
	for again := true; again; {
		again = false
		for _, p := range packagePrefixes {
			if strings.HasPrefix(s, p) {
				s, again = s[len(p):], true
			}
		}
	}
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\n", "; ")
}
