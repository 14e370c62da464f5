package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/lfs"
)

var lsCmd = &command{
	name:    "ls",
	args:    "[--json]",
	summary: "list the volumes in the store",
	help: `
Ls lists the volumes in the store with their size, the bytes they occupy,
the snapshot a clone was made from, the clones of each volume's snapshots
and who serves them. With --json it prints an array of the objects "hlfs info
--json" prints.`,
	flags: func(fs *flag.FlagSet) func(*cli, []string) error {
		asJSON := fs.Bool("json", false, "print JSON")
		return func(c *cli, args []string) error {
			if err := wantArgs("ls", args); err != nil {
				return err
			}
			return c.ls(*asJSON)
		}
	},
}

func (c *cli) ls(asJSON bool) error {
	st, err := c.openStore()
	if err != nil {
		return err
	}
	names, err := lfs.List(st)
	if err != nil {
		return fmt.Errorf("cannot list store %s: %w", c.store, err)
	}
	vols := make([]volumeJSON, 0, len(names))
	var failed int
	for _, name := range names {
		info, err := lfs.Stat(st, name)
		if err != nil {
			failed++
			vols = append(vols, volumeJSON{Name: name, Error: cliutil.Message(err)})
			continue
		}
		vols = append(vols, newVolumeJSON(info))
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

// String shows the owner in tables: "host:pid", or "-" for none.
func (o *ownerJSON) String() string {
	if o == nil {
		return "-"
	}
	return o.Host + ":" + strconv.Itoa(o.PID)
}
