package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// lsCmd returns "hlfs ls".
func (c *cli) lsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ls [--json] [--exact]",
		Short: "list the volumes in the store",
		Long: `
Ls lists the volumes in the store with their size, the bytes they occupy,
the snapshot a clone was made from, the clones of each volume's snapshots
and who serves them. With --json it prints an array of the objects "hlfs info
--json" prints.

Ls reads the store index: the store's root and one small object per
process that changed volumes, so it takes a few requests whatever the number
of volumes. STORED, SEGMENTS and SERVED BY of a volume being served are as of
its last description (every 5 s while it changes, and when it closes);
volumes the index does not describe (written by an older hlfs, or whose
server died) are read from the store. 'hlfs info VOLUME' and --exact read
the volumes themselves.

A volume whose superblock is missing, cut short or unreadable while its log
remains shows as damaged (see 'hlfs fsck --repair'), and ls exits 1. Entries
of the store that are not volumes (a README, a filer's .snapshot folder, what
an interrupted create, clone or rm left) are skipped with a warning.`,
		Args: positional(),
	}
	fs := cmd.Flags()
	asJSON := fs.Bool("json", false, "print JSON")
	exact := fs.Bool("exact", false, "read every volume from the store instead of the store index (slow on large stores; the columns are current)")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		return c.ls(*asJSON, *exact)
	}
	return cmd
}

func (c *cli) ls(asJSON, exact bool) error {
	st, err := c.openStore()
	if err != nil {
		return err
	}
	list := lfs.ListIndexedStore
	if exact {
		list = listExact
	}
	l, err := list(st)
	if err != nil {
		return fmt.Errorf("cannot list store %s: %w", c.store, err)
	}
	c.warnIgnored(l.Ignored)
	vols := make([]volumeJSON, 0, len(l.Volumes))
	var failed int
	for _, s := range l.Volumes {
		name := s.Name
		if errors.Is(s.Err, lfs.ErrDamaged) {
			failed++
			v := newVolumeJSON(s.Info)
			v.Error = "damaged: " + s.Damage + " " + damageAdvice(name)
			vols = append(vols, v)
			continue
		}
		if s.Err != nil {
			failed++
			vols = append(vols, volumeJSON{Name: name, Error: cliutil.Message(s.Err)})
			continue
		}
		vols = append(vols, newVolumeJSON(s.Info))
	}
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(vols); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(c.stdout, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSIZE\tSTORED\tSEGMENTS\tSOURCE\tCLONES\tSERVED BY")
		for _, v := range vols {
			if v.Damage != "" {
				fmt.Fprintf(tw, "%s\tdamaged\t%s\t%d\t-\t-\t%s\n", v.Name,
					cliutil.FormatSize(v.BytesStored), v.Segments, v.Owner.String())
				continue
			}
			if v.Error != "" {
				fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\n", v.Name)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", v.Name, cliutil.FormatSize(v.Size),
				cliutil.FormatSize(v.BytesStored), v.Segments, orDash(v.Source),
				orDash(strings.Join(v.Clones, ",")), v.Owner.String())
		}
		tw.Flush()
	}
	for _, v := range vols {
		if v.Error != "" {
			fmt.Fprintf(c.stderr, "hlfs: %s: %s\n", v.Name, v.Error)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d volumes could not be read", failed, len(vols))
	}
	return nil
}

// listExact lists the store reading every volume (lfs.Stat), as ls did
// before the store index.
func listExact(st objstore.Store) (lfs.IndexedListing, error) {
	l, err := lfs.ListStore(st)
	if err != nil {
		return lfs.IndexedListing{}, err
	}
	out := lfs.IndexedListing{Ignored: l.Ignored}
	for _, name := range l.Volumes {
		info, err := lfs.Stat(st, name)
		info.Name = name
		out.Volumes = append(out.Volumes, lfs.VolumeSummary{Info: info, Err: err})
	}
	return out, nil
}

// warnIgnored says on stderr which entries of the store's root are not
// volumes and were skipped.
func (c *cli) warnIgnored(ignored []lfs.Ignored) {
	for _, ig := range ignored {
		fmt.Fprintf(c.stderr, "hlfs: warning: ignoring %s in store %s: %s\n", ig.Name, c.store, ignoredReason(ig))
	}
}

// ignoredReason says why an entry of a store's root is no volume.
func ignoredReason(ig lfs.Ignored) string {
	switch ig.Kind {
	case lfs.IgnoredFile:
		return "a file, not a volume"
	case lfs.IgnoredName:
		return "not a volume name"
	case lfs.IgnoredLeftover:
		return fmt.Sprintf("holds %s but no superblock (left by an interrupted create, clone or rm; 'hlfs rm %s' removes it)",
			strings.Join(ig.Entries, ", "), ig.Name)
	}
	return ig.String()
}

// String shows the owner in tables: "host:pid", or "-" for none.
func (o *ownerJSON) String() string {
	if o == nil {
		return "-"
	}
	return o.Host + ":" + strconv.Itoa(o.PID)
}
