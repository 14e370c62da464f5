package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// duCmd returns "hlfs du".
func (c *cli) duCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "du VOLUME [--json]",
		Short: "show where a volume's space in the store goes",
		Long: `
Du shows how a volume's space in the store is used:

  provisioned      the volume's size
  mapped           the bytes of the volume that hold data (not holes)
  stored           the bytes of its objects in the store: log segments and
                   metadata (checkpoints, snapshot maps)
  live             the distinct bytes the volume or any snapshot reads
  garbage          segment bytes nothing reads (record headers included):
                   what cleaning reclaims
  reclaim blocked  the part of the garbage the cleaner may not touch now:
                   in segments recovery would replay (those after the
                   oldest checkpoint kept; "hlfs gc" writes checkpoints
                   first, which unblocks all but the segment being
                   written) or in segments a snapshot with clones reads
  fragmented       the live map's extents, and the mapped bytes in 1 MiB
                   windows scattered over many records (written by small
                   writes in random order) that "hlfs gc" rewrites in
                   address order (--defrag)
  snapshot S       the bytes only snapshot S reads: what removing it would
                   make reclaimable

It counts from scratch and reads the volume without taking it over, so it
works while the volume is served.`,
		Args: positional("VOLUME"),
	}
	fs := cmd.Flags()
	asJSON := fs.Bool("json", false, "print JSON (sizes in bytes)")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		return c.du(args[0], *asJSON)
	}
	return cmd
}

func (c *cli) du(arg string, asJSON bool) error {
	name, st, err := c.volumeInStore(arg)
	if err != nil {
		return err
	}
	u, err := lfs.DiskUsage(st, name)
	if err != nil {
		return c.volumeError(name, err)
	}
	if u.Snapshots == nil {
		u.Snapshots = []lfs.SnapshotUsage{} // [] rather than null
	}
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(u)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 8, 1, ' ', 0)
	fmt.Fprintf(tw, "name:\t%s\n", u.Name)
	fmt.Fprintf(tw, "provisioned:\t%s\n", sizeString(u.Provisioned))
	fmt.Fprintf(tw, "mapped:\t%s\n", sizeString(u.Mapped))
	fmt.Fprintf(tw, "stored:\t%s: %s in %s, %s of metadata", sizeString(u.Stored),
		cliutil.FormatSize(u.SegmentBytes), plural(u.Segments, "segment"), cliutil.FormatSize(u.MetadataBytes))
	if u.PoolBytes > 0 {
		fmt.Fprintf(tw, ", %s of deleted segments kept for reuse", cliutil.FormatSize(u.PoolBytes))
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "live:\t%s\n", sizeString(u.Live))
	fmt.Fprintf(tw, "garbage:\t%s\n", sizeString(u.Garbage))
	fmt.Fprintf(tw, "reclaim blocked:\t%s\n", sizeString(u.ReclaimBlocked))
	fmt.Fprintf(tw, "fragmented:\t%s in %s\n", sizeString(u.FragmentedBytes), plural(u.Extents, "extent"))
	for _, s := range u.Snapshots {
		fmt.Fprintf(tw, "snapshot %s:\t%s exclusive\n", s.Name, sizeString(s.ExclusiveBytes))
	}
	return tw.Flush()
}
