// Package progress draws a one-line progress bar for long copies:
//
//	importing demo [##########..........]  48%  1.2 GiB / 2.5 GiB  312.4 MiB/s
//
// New returns a bar that draws only when its writer is a terminal, so callers
// create one unconditionally and scripts, pipes and tests see nothing. Redraws
// are throttled; Done draws the final state and ends the line.
//
// A Bar is safe for concurrent use.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hlfs/hlfs/internal/cliutil"
)

// width is the number of cells of the bar itself.
const width = 20

// redrawEvery throttles redraws.
const redrawEvery = 100 * time.Millisecond

// minRateTime is how long a job runs before its rate is shown; earlier
// rates are noise.
const minRateTime = 500 * time.Millisecond

// Bar is a progress bar for a job of a known number of bytes. A nil *Bar is
// valid and draws nothing.
type Bar struct {
	w     io.Writer
	label string
	total int64
	now   func() time.Time

	// mu guards the fields below; drawing happens under it.
	mu struct {
		sync.Mutex
		done     int64
		start    time.Time
		lastDraw time.Time
		finished bool
	}
}

// IsTerminal reports whether w is an *os.File open on a terminal (a character
// device, which is what a TTY is to Stat).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || f == nil {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// New returns a bar labelled label for total bytes that draws on w when w is
// a terminal (see IsTerminal) and otherwise returns nil, a bar that does
// nothing.
func New(w io.Writer, label string, total int64) *Bar {
	if !IsTerminal(w) {
		return nil
	}
	return NewTo(w, label, total)
}

// NewTo returns a bar that always draws on w, terminal or not.
func NewTo(w io.Writer, label string, total int64) *Bar {
	b := &Bar{w: w, label: label, total: total, now: time.Now}
	b.mu.start = b.now()
	return b
}

// Add records n more bytes done.
func (b *Bar) Add(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.setLocked(b.mu.done + n)
}

// Set records that done bytes of the total are done.
func (b *Bar) Set(done int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.setLocked(done)
}

// Done draws the final state and ends the line. Later calls do nothing.
func (b *Bar) Done() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.finished {
		return
	}
	b.mu.finished = true
	b.drawLocked(b.now())
	fmt.Fprintln(b.w)
}

func (b *Bar) setLocked(done int64) {
	if b.mu.finished {
		return
	}
	b.mu.done = done
	now := b.now()
	if now.Sub(b.mu.lastDraw) < redrawEvery {
		return
	}
	b.drawLocked(now)
}

// drawLocked redraws the line. It is called with mu held.
func (b *Bar) drawLocked(now time.Time) {
	b.mu.lastDraw = now
	done := min(max(b.mu.done, 0), b.total)
	frac := 1.0
	if b.total > 0 {
		frac = float64(done) / float64(b.total)
	}
	cells := int(frac * width)
	bar := strings.Repeat("#", cells) + strings.Repeat(".", width-cells)
	rate := ""
	if secs := now.Sub(b.mu.start).Seconds(); secs >= minRateTime.Seconds() {
		rate = fmt.Sprintf("%.1f MiB/s", float64(done)/secs/(1<<20))
	}
	// \r returns to the start of the line; \x1b[K clears what a longer
	// previous line left behind.
	fmt.Fprintf(b.w, "\r%s [%s] %3d%%  %s / %s  %s\x1b[K", b.label, bar, int(frac*100),
		cliutil.FormatSize(done), cliutil.FormatSize(b.total), rate)
}
