package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hlfs/hlfs/internal/admin"
	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/internal/progress"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// scrubCmd returns "hlfs scrub".
func (c *cli) scrubCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scrub VOLUME [--rate SIZE] [--json]",
		Short: "read back and verify every byte a volume and its snapshots read",
		Long: `
Scrub reads every record that VOLUME or one of its snapshots maps, each once
and in log order, and verifies it against its checksums, so that bit rot is
found before a guest reads it (a guest's read of damaged bytes gets an I/O
error, never wrong data). It prints each damaged range: the store object and
offset, and the volume and snapshot ranges that read it (what to restore),
and exits 1 when it found damage.

It works whether or not the volume is served. When it is, the serving
process scrubs it (through the admin socket its owner lock names), reading
what it holds in memory too; there is no progress bar then. --rate bounds
the bytes read per second ("hlfs serve --scrub-interval" scrubs in the
background at --scrub-rate).`,
		Args: positional("VOLUME"),
	}
	fs := cmd.Flags()
	rate := fs.String("rate", "", "read at most `SIZE` bytes per second (default: no bound)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		r, err := rateFlag("scrub", "rate", *rate)
		if err != nil {
			return err
		}
		return c.scrub(args[0], r, *asJSON)
	}
	return cmd
}

func (c *cli) scrub(arg string, rate int64, asJSON bool) error {
	name, st, err := c.volumeInStore(arg)
	if err != nil {
		return err
	}
	req := admin.Request{Op: admin.OpScrub, Volume: name, Scrub: &admin.ScrubOptions{Rate: rate}}
	var rep lfs.ScrubReport
	err = c.onVolume(st, name, req, &rep, func(v *lfs.Volume) error {
		var bar *progress.Bar
		var err error
		rep, err = v.Scrub(lfs.ScrubOptions{Rate: rate, Progress: func(done, total int64) {
			if bar == nil {
				bar = progress.New(c.stderr, "scrubbing "+name, total)
			}
			bar.Set(done)
		}})
		bar.Done()
		return err
	})
	if err != nil {
		return c.volumeError(name, err)
	}
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		for _, d := range rep.Damaged {
			fmt.Fprintf(c.stdout, "%s: damaged: %s offset %d, %s: %s; %s\n", name, d.Object, d.Offset,
				cliutil.FormatSize(d.Length), d.Reason, readBy(d.ReadBy))
		}
		verdict := "no damage"
		if !rep.OK() {
			verdict = plural(len(rep.Damaged), "damaged range")
		}
		moved := ""
		if rep.Moved > 0 {
			moved = fmt.Sprintf(" (%d moved by the cleaner meanwhile: verified next time)", rep.Moved)
		}
		fmt.Fprintf(c.stdout, "scrub %s: %s, %s verified%s: %s\n", name, plural(int(rep.Records), "record"),
			cliutil.FormatSize(rep.BytesVerified), moved, verdict)
	}
	if !rep.OK() {
		return fmt.Errorf("%s is damaged: %s found by scrub; reads of them fail with an I/O error until they are restored", name, plural(len(rep.Damaged), "damaged range"))
	}
	return nil
}

// readBy says which volume ranges read damaged bytes.
func readBy(reads []lfs.DamagedRead) string {
	if len(reads) == 0 {
		return "no read depends on it"
	}
	parts := make([]string, len(reads))
	for i, r := range reads {
		parts[i] = fmt.Sprintf("%s bytes %d-%d", r.Name, r.Offset, r.Offset+r.Length-1)
	}
	return "read by " + strings.Join(parts, ", ")
}
