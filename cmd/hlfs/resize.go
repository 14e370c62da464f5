package main

import (
	"errors"
	"fmt"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// resizeCmd returns "hlfs resize".
func (c *cli) resizeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "resize VOLUME --size SIZE [--allow-shrink]",
		Short: "grow or shrink a volume",
		Long: `
Resize changes a volume's size. Growing adds zeros at the end. Shrinking
discards the data past the new end and needs --allow-shrink. The volume must
not be served, and the size must be a multiple of its block size.`,
		Args: positional("VOLUME"),
	}
	fs := cmd.Flags()
	size := fs.String("size", "", "new `SIZE`, e.g. 20G (required)")
	allowShrink := fs.Bool("allow-shrink", false, "allow a smaller size, discarding the data past it")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		n, err := sizeFlag("resize", "size", *size, true)
		if err != nil {
			return err
		}
		return c.resize(args[0], n, *allowShrink)
	}
	return cmd
}

func (c *cli) resize(arg string, size int64, allowShrink bool) error {
	name, st, err := c.volumeInStore(arg)
	if err != nil {
		return err
	}
	info, err := lfs.Stat(st, name)
	if err != nil {
		return c.volumeError(name, err)
	}
	if bs := int64(info.BlockSize); bs > 0 && size%bs != 0 {
		return fmt.Errorf("size %s is not a multiple of the block size %s of %s", sizeString(size), cliutil.FormatSize(bs), name)
	}
	if size == info.Size {
		fmt.Fprintf(c.stdout, "%s is already %s\n", name, cliutil.FormatSize(size))
		return nil
	}
	if err := lfs.Resize(st, name, size, allowShrink); err != nil {
		if errors.Is(err, lfs.ErrShrink) {
			return fmt.Errorf("%s would shrink from %s to %s, discarding data; pass --allow-shrink to do it",
				name, cliutil.FormatSize(info.Size), cliutil.FormatSize(size))
		}
		return c.volumeError(name, err)
	}
	fmt.Fprintf(c.stdout, "resized %s from %s to %s\n", name, cliutil.FormatSize(info.Size), cliutil.FormatSize(size))
	return nil
}
