package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// infoCmd returns "hlfs info".
func (c *cli) infoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "info VOLUME [--json]",
		Short: "show a volume's size, settings and use",
		Long: `
Info shows a volume's size, block size and settings, how many bytes and log
segments it occupies in the store, when it was created, the snapshot it was
cloned from, the volumes cloned from its snapshots and, while it is served,
which host and process hold it, and the size of its live block map: extents
and the memory they take in a serving process (an estimate, 48 bytes each).
Reading the map replays the log after the newest checkpoint (read-only, so
it works while the volume is served).`,
		Args: positional("VOLUME"),
	}
	fs := cmd.Flags()
	asJSON := fs.Bool("json", false, "print JSON")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		return c.info(args[0], *asJSON)
	}
	return cmd
}

// volumeJSON is a volume as "info --json" and "ls --json" print it. Sizes
// are bytes, times RFC 3339.
type volumeJSON struct {
	Name        string     `json:"name"`
	Size        int64      `json:"size"`
	BlockSize   int        `json:"block_size"`
	Compress    bool       `json:"compress"`
	SegmentSize int        `json:"segment_size"`
	Created     time.Time  `json:"created"`
	Segments    int        `json:"segments"`
	BytesStored int64      `json:"bytes_stored"`
	Checkpoints int        `json:"checkpoints"`
	Owner       *ownerJSON `json:"owner"` // null when not served
	// Source is the snapshot a clone was made from, "VOLUME@SNAPSHOT".
	Source string `json:"source,omitempty"`
	// Clones are the volumes cloned from this volume's snapshots.
	Clones []string `json:"clones,omitempty"`
	// Extents and MapBytes are the size of the live block map (info
	// only; omitted when it could not be read, or by ls).
	Extents  *int   `json:"extents,omitempty"`
	MapBytes *int64 `json:"map_bytes,omitempty"`
	// Error is set, alone with Name, when ls could not read the volume, or
	// with Damage for a damaged volume.
	Error string `json:"error,omitempty"`
	// Damage says what is wrong with a damaged volume's superblock; then
	// only Name, Segments, BytesStored, Checkpoints and Owner are known.
	Damage string `json:"damage,omitempty"`
}

// ownerJSON is the process serving a volume.
type ownerJSON struct {
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	Epoch uint64    `json:"epoch"`
	Since time.Time `json:"since"`
	// NBD are the URIs it serves NBD on (lfs.OwnerRecord.NBD).
	NBD []string `json:"nbd,omitempty"`
}

func newVolumeJSON(info lfs.Info) volumeJSON {
	v := volumeJSON{
		Name:        info.Name,
		Size:        info.Size,
		BlockSize:   info.BlockSize,
		Compress:    info.Compress,
		SegmentSize: info.SegmentSize,
		Created:     info.Created,
		Segments:    info.Segments,
		BytesStored: info.BytesStored,
		Checkpoints: info.Checkpoints,
		Source:      info.Source,
		Clones:      info.Clones,
		Damage:      info.Damage,
	}
	if o := info.Owner; o != nil {
		v.Owner = &ownerJSON{Host: o.Host, PID: o.PID, Epoch: o.Epoch, Since: o.Since, NBD: o.NBD}
	}
	return v
}

func (c *cli) info(arg string, asJSON bool) error {
	name, st, err := c.volumeInStore(arg)
	if err != nil {
		return err
	}
	info, err := lfs.Stat(st, name)
	if err != nil {
		return c.volumeError(name, err)
	}
	v := newVolumeJSON(info)
	if ms, err := lfs.LiveMapStats(st, name); err == nil {
		v.Extents, v.MapBytes = &ms.Extents, &ms.Bytes
	} else {
		fmt.Fprintf(c.stderr, "hlfs: info: cannot read the block map of %s: %v\n", name, err)
	}
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	onOff := map[bool]string{false: "off", true: "on"}
	tw := tabwriter.NewWriter(c.stdout, 0, 8, 1, ' ', 0)
	fmt.Fprintf(tw, "name:\t%s\n", v.Name)
	fmt.Fprintf(tw, "size:\t%s (%d bytes)\n", cliutil.FormatSize(v.Size), v.Size)
	fmt.Fprintf(tw, "block size:\t%s\n", cliutil.FormatSize(int64(v.BlockSize)))
	fmt.Fprintf(tw, "compress:\t%s\n", onOff[v.Compress])
	fmt.Fprintf(tw, "segment size:\t%s\n", cliutil.FormatSize(int64(v.SegmentSize)))
	fmt.Fprintf(tw, "bytes stored:\t%s (%d bytes)\n", cliutil.FormatSize(v.BytesStored), v.BytesStored)
	fmt.Fprintf(tw, "segments:\t%d\n", v.Segments)
	fmt.Fprintf(tw, "checkpoints:\t%d\n", v.Checkpoints)
	if v.Extents != nil {
		fmt.Fprintf(tw, "map:\t%d extents, %s in memory\n", *v.Extents, cliutil.FormatSize(*v.MapBytes))
	}
	fmt.Fprintf(tw, "created:\t%s\n", v.Created.Local().Format(time.RFC3339))
	if v.Source != "" {
		fmt.Fprintf(tw, "clone of:\t%s\n", v.Source)
	}
	if len(v.Clones) > 0 {
		fmt.Fprintf(tw, "clones:\t%s\n", strings.Join(v.Clones, ", "))
	}
	if o := v.Owner; o != nil {
		fmt.Fprintf(tw, "served by:\t%s pid %d (epoch %d) since %s\n", o.Host, o.PID, o.Epoch,
			o.Since.Local().Format(time.RFC3339))
		if len(o.NBD) > 0 {
			fmt.Fprintf(tw, "served on:\t%s (see 'hlfs attach')\n", strings.Join(o.NBD, ", "))
		}
	}
	return tw.Flush()
}
