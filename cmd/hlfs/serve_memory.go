package main

import (
	"runtime/debug"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/internal/membudget"
)

const (
	// defaultMemory is serve's --memory: the same on every host, so a
	// fleet's service units can be sized once (see README: memory).
	defaultMemory = "1G"
	// minMemory is the smallest --memory: room for a few records per
	// volume and one full-size request.
	minMemory = 16 << 20
)

// memoryBudget parses serve's --memory and sets the Go runtime's soft
// memory limit to match, unless GOMEMLIMIT set one: the budget plus half
// again for what the collector has not reclaimed yet, plus 64 MiB for the
// maps and the rest of the process. Without it the heap may grow to twice
// the live data before a collection.
func memoryBudget(value string, getenv func(string) string) (*membudget.Budget, error) {
	n, err := cliutil.ParseSize(value)
	if err != nil {
		return nil, usageError("serve", "--memory: %v", err)
	}
	if n < minMemory {
		return nil, usageError("serve", "--memory %s: want at least 16M", value)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(n + n/2 + 64<<20)
	}
	return membudget.New(n), nil
}
