package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/lfs"
	"github.com/hlfs/hlfs/snapshot"
	"github.com/spf13/cobra"
)

// snapshotLsCmd returns "hlfs snapshot ls".
func (c *cli) snapshotLsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ls VOLUME [--tree] [--json]",
		Short: "list a volume's snapshots",
		Long: `
Snapshot ls lists the snapshots of VOLUME in the order they were taken: name,
when it was taken, its parent snapshot (the one the volume descended from
when it was taken), the bytes only it holds (what removing it would free)
and the volumes cloned from it. It works while the volume is served.

With --tree it draws the snapshots as a tree, branches left by rollbacks
included, with "* (live volume)" under the snapshot the volume as it is now
descends from. With --json it prints an array of objects with the fields
name, parent ("" for none), created, exclusive_bytes, clones and head (the
live volume descends from it).`,
		Args: positional("VOLUME"),
	}
	fs := cmd.Flags()
	tree := fs.Bool("tree", false, "draw the snapshot tree")
	asJSON := fs.Bool("json", false, "print JSON")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		if *tree && *asJSON {
			return usageError("snapshot ls", "--tree and --json do not go together")
		}
		return c.snapshotLs(args[0], *tree, *asJSON)
	}
	return cmd
}

// snapshotJSON is a snapshot as "snapshot ls --json" prints it.
type snapshotJSON struct {
	Name           string    `json:"name"`
	Parent         string    `json:"parent"`
	Created        time.Time `json:"created"`
	ExclusiveBytes int64     `json:"exclusive_bytes"`
	Clones         []string  `json:"clones"` // never null
	Head           bool      `json:"head"`
}

func (c *cli) snapshotLs(arg string, tree, asJSON bool) error {
	vol, err := volumeArg(arg)
	if err != nil {
		return err
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	snaps, err := lfs.ListSnapshots(st, vol)
	if err != nil {
		return c.volumeError(vol, err)
	}
	switch {
	case asJSON:
		out := make([]snapshotJSON, 0, len(snaps))
		for _, s := range snaps {
			out = append(out, snapshotJSON{Name: s.Name, Parent: s.Parent, Created: s.Created,
				ExclusiveBytes: s.ExclusiveBytes, Clones: append([]string{}, s.Clones...), Head: s.Head})
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	case tree:
		drawSnapshotTree(c.stdout, vol, snaps)
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCREATED\tPARENT\tEXCLUSIVE\tCLONES")
	for _, s := range snaps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, snapshotTime(s.Created), orDash(s.Parent),
			cliutil.FormatSize(s.ExclusiveBytes), orDash(strings.Join(s.Clones, ",")))
	}
	return tw.Flush()
}

// snapshotTime shows when a snapshot was taken, in local time.
func snapshotTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }

// orDash shows an empty table cell as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// drawSnapshotTree draws vol's snapshots as a tree (snapshot.Draw), each
// with its creation time, exclusive bytes and clones:
//
//	vm1
//	└── s1  2025-01-02 10:00:00  4 KiB
//	    ├── s2  2025-01-02 11:00:00  8 KiB
//	    └── * (live volume)
func drawSnapshotTree(w io.Writer, vol string, snaps []lfs.SnapshotInfo) {
	items := make([]snapshot.DrawItem, len(snaps))
	for i, s := range snaps {
		label := fmt.Sprintf("%s  %s", snapshotTime(s.Created), cliutil.FormatSize(s.ExclusiveBytes))
		if len(s.Clones) > 0 {
			label += "  clones: " + strings.Join(s.Clones, ", ")
		}
		items[i] = snapshot.DrawItem{Name: s.Name, Parent: s.Parent, Label: label, Head: s.Head}
	}
	snapshot.Draw(w, vol, items)
}
