// Package cliutil holds the small pieces the hlfs command line needs that are
// worth testing on their own: size parsing and formatting (ParseSize,
// FormatSize), the error type that marks usage errors and the mapping of
// errors to one-line messages and exit codes (UsageError, ExitCode, Message),
// and sparse-file probing (NextData).
//
// Everything here is stateless and safe for concurrent use.
package cliutil
