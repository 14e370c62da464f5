package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/lfs"
)

var resizeCmd = &command{
	name:    "resize",
	args:    "VOLUME --size SIZE [--allow-shrink]",
	summary: "grow or shrink a volume",
	help: `
Resize changes a volume's size. Growing adds zeros at the end. Shrinking
discards the data past the new end and needs --allow-shrink. The volume must
not be served, and the size must be a multiple of its block size.`,
	flags: func(fs *flag.FlagSet) func(*cli, []string) error {
		size := fs.String("size", "", "new `SIZE`, e.g. 20G (required)")
		allowShrink := fs.Bool("allow-shrink", false, "allow a smaller size, discarding the data past it")
		return func(c *cli, args []string) error {
			if err := wantArgs("resize", args, "VOLUME"); err != nil {
				return err
			}
			n, err := sizeFlag("resize", "size", *size, true)
			if err != nil {
				return err
			}
			return c.resize(args[0], n, *allowShrink)
		}
	},
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
