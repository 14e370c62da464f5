package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/lfs"
	"github.com/hlfs/hlfs/nbdserver"
	"github.com/spf13/cobra"
)

// Served volumes and snapshots offer their changes over NBD as
// qemu:dirty-bitmap:SNAPSHOT.
var (
	_ nbdserver.BitmapExport = (*lfs.Volume)(nil)
	_ nbdserver.BitmapExport = (*lfs.SnapshotView)(nil)
)

// diffCmd returns "hlfs diff".
func (c *cli) diffCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "diff VOLUME@FROM [VOLUME[@TO]] [--json]",
		Short: "list the ranges changed since a snapshot",
		Long: `
Diff lists the ranges of VOLUME whose content changed from its snapshot FROM
to its snapshot TO, or to the volume as it is now when TO is not given: one
line per range, "OFFSET LENGTH data" (the range holds new data) or "OFFSET
LENGTH zero" (it was trimmed or zeroed), then the total. When FROM is older
than TO these are exactly the ranges written, zeroed or trimmed since FROM
(less any that were holes at both points); data the cleaner moved, and a
clone's data shared with its source, are not changes. Only the volume's maps
are read, no data. Works while the volume is served.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				return nil
			}
			return wantArgs(commandName(cmd), args, "VOLUME@FROM", "VOLUME[@TO]")
		},
		RunE: func(_ *cobra.Command, args []string) error {
			to := ""
			if len(args) == 2 {
				to = args[1]
			}
			return c.diff(args[0], to, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// diffPoints checks the arguments of diff and export-diff: FROM (a
// snapshot) and TO (the volume, or one of its snapshots; "" is the volume
// named by FROM).
func diffPoints(fromArg, toArg string) (vol, from, to string, err error) {
	if vol, from, err = snapshotArg(fromArg); err != nil {
		return "", "", "", err
	}
	if toArg == "" {
		return vol, from, "", nil
	}
	toVol := toArg
	if strings.Contains(toArg, "@") {
		toVol, to, err = snapshotArg(toArg)
	} else {
		err = lfs.ValidateName(toArg)
	}
	if err != nil {
		return "", "", "", err
	}
	if toVol != vol {
		return "", "", "", fmt.Errorf("%s and %s are points of two volumes; diff compares points of one", fromArg, toArg)
	}
	return vol, from, to, nil
}

// diffRange is one changed range as diff --json prints it.
type diffRange struct {
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	Kind   string `json:"kind"` // "data" or "zero"
}

// diffReport is diff --json's output.
type diffReport struct {
	Volume       string      `json:"volume"`
	From         string      `json:"from"`
	To           string      `json:"to,omitempty"` // "" for the volume now
	Size         int64       `json:"size"`
	Ranges       []diffRange `json:"ranges"`
	ChangedBytes int64       `json:"changed_bytes"`
	DataBytes    int64       `json:"data_bytes"`
	ZeroBytes    int64       `json:"zero_bytes"`
}

func (c *cli) diff(fromArg, toArg string, asJSON bool) error {
	vol, from, to, err := diffPoints(fromArg, toArg)
	if err != nil {
		return err
	}
	v, err := c.openPoints(vol, from, to)
	if err != nil {
		return err
	}
	defer v.Close()
	rep := diffReport{Volume: vol, From: from, To: to, Size: v.Size(), Ranges: []diffRange{}}
	err = v.Changes(from, to, func(r lfs.ChangedRange) error {
		kind := "data"
		if r.Zero {
			kind = "zero"
			rep.ZeroBytes += r.Length
		} else {
			rep.DataBytes += r.Length
		}
		rep.ChangedBytes += r.Length
		rep.Ranges = append(rep.Ranges, diffRange{r.Off, r.Length, kind})
		return nil
	})
	if err != nil {
		return c.volumeError(vol, err)
	}
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	for _, r := range rep.Ranges {
		fmt.Fprintf(c.stdout, "%d %d %s\n", r.Offset, r.Length, r.Kind)
	}
	fmt.Fprintf(c.stdout, "total: %s changed in %d ranges (%s data, %s zero) of %s\n",
		cliutil.FormatSize(rep.ChangedBytes), len(rep.Ranges), cliutil.FormatSize(rep.DataBytes),
		cliutil.FormatSize(rep.ZeroBytes), cliutil.FormatSize(rep.Size))
	return nil
}

// openPoints opens volume vol read-only (it may be served meanwhile) and
// checks that it has the snapshots snaps ("" skipped).
func (c *cli) openPoints(vol string, snaps ...string) (*lfs.Volume, error) {
	st, err := c.openStore()
	if err != nil {
		return nil, err
	}
	v, err := lfs.Open(st, vol, lfs.Options{ReadOnly: true, Logger: c.warnLogger()})
	if err != nil {
		return nil, c.volumeError(vol, err)
	}
	if err := c.checkSnapshots(v, snaps...); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

// checkSnapshots returns the error for the first of snaps ("" skipped)
// that v does not have.
func (c *cli) checkSnapshots(v *lfs.Volume, snaps ...string) error {
	have := v.SnapshotNames()
	for _, s := range snaps {
		if s != "" && !slices.Contains(have, s) {
			return c.snapshotError(v.Name(), s, lfs.ErrSnapshotNotFound)
		}
	}
	return nil
}
