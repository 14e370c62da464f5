package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hlfs/hlfs/internal/admin"
	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/internal/progress"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// gcCmd returns "hlfs gc".
func (c *cli) gcCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gc VOLUME [--max-utilization FRACTION] [--rate SIZE] [--json]",
		Short: "reclaim the space of overwritten data now, served or not",
		Long: `
Gc cleans VOLUME now: the segments whose share of live bytes (bytes the
volume or one of its snapshots still reads) is at most --max-utilization have
those bytes copied to the end of the log and are deleted, as are the
segments nothing reads any more; then it prints what it did. The volume reads
the same before and after. Gc first writes checkpoints, so that recovery
needs no old segment; it leaves alone the segment being written and the
segments that a snapshot with clones reads. "hlfs du" shows how much garbage
there is.

It works whether or not the volume is served. When it is not, gc opens it,
shows a progress bar on a terminal and closes it; a run cannot stop midway,
so a first ^C only says so and a second kills it (the volume recovers at its
next open). When it is served, the serving process cleans it (through the
admin socket its owner lock names) while it goes on serving; there is no
progress bar then, and ^C only stops waiting: the server finishes the run.
"hlfs serve" also cleans in the background unless told not to (see its
--gc-* flags).

Gc also defragments: 1 MiB windows of the volume whose data is scattered
over many records (written by small writes in random order) are rewritten
in address order, so each becomes one extent and a sequential read of it
one read; at most --defrag bytes ("all": every such window once; 0: none),
at the same --rate. The old records become garbage that the same run
reclaims. Volumes with clones of their snapshots are not defragmented.`,
		Args: positional("VOLUME"),
	}
	fs := cmd.Flags()
	maxUtil := fs.Float64("max-utilization", 0.95, "clean only segments whose live share is at most `FRACTION` (above 0, at most 1)")
	rate := fs.String("rate", "", "bound the copying to `SIZE` bytes per second (default: no bound)")
	asJSON := fs.Bool("json", false, "print what gc did as JSON")
	defrag := fs.String("defrag", "all", "rewrite at most `SIZE` bytes of fragmented data in address order; \"all\" or 0 (none)")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		if !(*maxUtil > 0 && *maxUtil <= 1) {
			return usageError("gc", "--max-utilization %v: want a fraction above 0 and at most 1", *maxUtil)
		}
		r, err := rateFlag("gc", "rate", *rate)
		if err != nil {
			return err
		}
		d := int64(lfs.DefragAll)
		if v := strings.TrimSpace(*defrag); v == "0" {
			d = 0
		} else if v != "all" {
			if d, err = cliutil.ParseSize(v); err != nil {
				return usageError("gc", "--defrag: %v", err)
			}
		}
		return c.gc(args[0], lfs.GCOptions{Rate: r, MaxUtilization: *maxUtil, Defrag: d}, *asJSON)
	}
	return cmd
}

// rateFlag parses a bytes-per-second flag: a size, or "0" or nothing for no
// bound (returned as 0).
func rateFlag(cmd, flagName, value string) (int64, error) {
	if v := strings.TrimSpace(value); v == "" || v == "0" {
		return 0, nil
	}
	n, err := cliutil.ParseSize(value)
	if err != nil {
		return 0, usageError(cmd, "--%s: %v", flagName, err)
	}
	return n, nil
}

func (c *cli) gc(arg string, opts lfs.GCOptions, asJSON bool) error {
	name, st, err := c.volumeInStore(arg)
	if err != nil {
		return err
	}
	req := admin.Request{Op: admin.OpGC, Volume: name, GC: &admin.GCOptions{Rate: opts.Rate, MaxUtilization: opts.MaxUtilization, Defrag: opts.Defrag}}
	var stats lfs.GCStats
	err = c.onVolume(st, name, req, &stats, func(v *lfs.Volume) error {
		// A run cannot stop midway: the first ^C makes the next one kill
		// the process, which the volume survives (copies that no
		// checkpoint names yet are garbage at the next open).
		defer context.AfterFunc(c.ctx, func() {
			c.releaseSignals()
			fmt.Fprintf(c.stderr, "\nhlfs: gc of %s cannot stop midway; ^C again kills it (the volume recovers at its next open)\n", name)
		})()
		var bar *progress.Bar
		opts.Progress = func(done, total int64) {
			if bar == nil {
				bar = progress.New(c.stderr, "cleaning "+name, total)
			}
			bar.Set(done)
		}
		var err error
		stats, err = v.GC(opts)
		bar.Done()
		return err
	})
	if err != nil {
		return c.volumeError(name, err)
	}
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(stats)
	}
	kept := ""
	if stats.SegmentsKept > 0 {
		kept = fmt.Sprintf(", %d kept for clones made meanwhile", stats.SegmentsKept)
	}
	defragged := ""
	if stats.DefragWindows > 0 {
		defragged = fmt.Sprintf(" (%s of it defragmenting %s)", cliutil.FormatSize(stats.DefragBytes), plural(stats.DefragWindows, "window"))
	}
	fmt.Fprintf(c.stdout, "gc %s: %s cleaned, %d deleted%s, %s copied%s, %s freed\n", name,
		plural(stats.SegmentsCleaned, "segment"), stats.SegmentsDeleted, kept,
		cliutil.FormatSize(stats.BytesCopied), defragged, cliutil.FormatSize(stats.BytesDeleted))
	return nil
}

// plural returns "1 segment", "2 segments".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
