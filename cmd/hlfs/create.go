package main

import (
	"fmt"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// createCmd returns "hlfs create".
func (c *cli) createCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create VOLUME --size SIZE [--block-size SIZE] [--compress] [--replication N]",
		Short: "create an empty volume",
		Long: `
Create creates an empty (all-zero, thin) volume in the store. The size must be
a multiple of the block size. On HDFS, --replication sets the replication
factor of the volume's files (default: the cluster's dfs.replication).`,
		Args: positional("VOLUME"),
	}
	fs := cmd.Flags()
	size := fs.String("size", "", "volume `SIZE`, e.g. 10G (required)")
	blockSize := fs.String("block-size", "4K", "block `SIZE`: a power of two from 512 to 64K")
	compress := fs.Bool("compress", false, "compress data with snappy")
	replication := fs.Int("replication", 0, "replication factor `N` of the volume's files on HDFS (0: the cluster's default)")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		n, err := sizeFlag("create", "size", *size, true)
		if err != nil {
			return err
		}
		bs, err := sizeFlag("create", "block-size", *blockSize, true)
		if err != nil {
			return err
		}
		if *replication < 0 || *replication > 32 {
			return usageError("create", "--replication %d: want 1 to 32, or 0 for the store's default", *replication)
		}
		return c.create(args[0], lfs.Config{Size: n, BlockSize: int(bs), Compress: *compress, Replication: *replication})
	}
	return cmd
}

func (c *cli) create(arg string, cfg lfs.Config) error {
	name, err := volumeArg(arg)
	if err != nil {
		return err
	}
	bs := int64(cfg.BlockSize)
	if bs > 0 && bs&(bs-1) == 0 && cfg.Size%bs != 0 {
		return fmt.Errorf("size %s is not a multiple of the block size %s", sizeString(cfg.Size), cliutil.FormatSize(bs))
	}
	st, err := c.createStore() // the first volume makes the store
	if err != nil {
		return err
	}
	if err := lfs.Create(st, name, cfg); err != nil {
		return c.volumeError(name, err)
	}
	compressed := ""
	if cfg.Compress {
		compressed = ", compressed"
	}
	fmt.Fprintf(c.stdout, "created %s: %s, %s blocks%s\n", name, cliutil.FormatSize(cfg.Size),
		cliutil.FormatSize(bs), compressed)
	return nil
}
