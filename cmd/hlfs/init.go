package main

import (
	"errors"
	"fmt"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/spf13/cobra"
)

// initCmd returns "hlfs init".
func (c *cli) initCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "create an empty store",
		Long: `
Init creates the store named by --store (a directory, or a folder on HDFS)
when it does not exist yet. Every other command refuses a store that does
not exist, so a mistyped --store is an error rather than a new, empty store;
the first 'hlfs create' also makes the store. Running init on an existing
store changes nothing.`,
		Args: positional(),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.initStore()
		},
	}
}

func (c *cli) initStore() error {
	_, err := c.openStore()
	if err == nil {
		fmt.Fprintf(c.stdout, "store %s exists\n", c.store)
		return nil
	}
	if !errors.Is(err, objstore.ErrNoStore) {
		return err // unreachable, a file, a bad URI: not for init to fix
	}
	if _, err := c.createStore(); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "created store %s\n", c.store)
	return nil
}
