//go:build !linux

package cliutil

// Hole probing is only wired up on Linux; elsewhere files are read whole.
const (
	seekData = -1
	seekHole = -1
)
