package progress

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeClock returns a clock that advances by step on every call.
func fakeClock(step time.Duration) func() time.Time {
	t := time.Unix(1000, 0)
	return func() time.Time {
		t = t.Add(step)
		return t
	}
}

func newTestBar(w *bytes.Buffer, total int64, step time.Duration) *Bar {
	b := &Bar{w: w, label: "copy", total: total, now: fakeClock(step)}
	b.mu.start = b.now()
	return b
}

func TestBarDraws(t *testing.T) {
	var buf bytes.Buffer
	b := newTestBar(&buf, 100<<20, time.Second)
	b.Add(25 << 20)
	b.Add(25 << 20)
	b.Done()
	b.Add(1) // after Done: ignored
	b.Done()
	out := buf.String()
	lines := strings.Split(out, "\r")
	if len(lines) != 4 { // "", two updates, final
		t.Fatalf("got %d draws: %q", len(lines)-1, out)
	}
	if !strings.Contains(lines[1], " 25%") || !strings.Contains(lines[1], "[#####...............]") {
		t.Errorf("first draw %q", lines[1])
	}
	if !strings.Contains(lines[2], " 50%") || !strings.Contains(lines[2], "50 MiB / 100 MiB") {
		t.Errorf("second draw %q", lines[2])
	}
	// 50 MiB in 3 ticks of the clock (one second each).
	if !strings.Contains(lines[3], "16.7 MiB/s") || !strings.HasSuffix(out, "\n") {
		t.Errorf("final draw %q", lines[3])
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("Done twice ended the line twice: %q", out)
	}
}

func TestBarRateNeedsTime(t *testing.T) {
	var buf bytes.Buffer
	b := newTestBar(&buf, 100, time.Millisecond)
	b.Set(50)
	if strings.Contains(buf.String(), "MiB/s") {
		t.Errorf("rate shown after 2 ms: %q", buf.String())
	}
}

func TestBarThrottles(t *testing.T) {
	var buf bytes.Buffer
	b := newTestBar(&buf, 1000, time.Millisecond)
	for range 1000 {
		b.Add(1)
	}
	draws := strings.Count(buf.String(), "\r")
	if draws < 5 || draws > 15 { // about every 100 of the 1 ms ticks
		t.Errorf("%d draws for 1000 updates over 1 s", draws)
	}
	b.Set(2000) // beyond the total: clamps
	b.Done()
	if !strings.Contains(buf.String(), "100%") {
		t.Errorf("final draw not at 100%%: %q", buf.String())
	}
}

func TestNilBarIsNoOp(t *testing.T) {
	var b *Bar
	b.Add(1)
	b.Set(2)
	b.Done()
}

func TestNewOnlyDrawsOnTerminals(t *testing.T) {
	var buf bytes.Buffer
	if b := New(&buf, "x", 10); b != nil {
		t.Error("New on a buffer returned a drawing bar")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Error("a regular file is a terminal")
	}
	if b := New(f, "x", 10); b != nil {
		t.Error("New on a regular file returned a drawing bar")
	}
	if IsTerminal(nil) {
		t.Error("nil is a terminal")
	}
	if b := NewTo(&buf, "x", 0); b == nil {
		t.Fatal("NewTo returned nil")
	} else {
		b.Done()
		if !strings.Contains(buf.String(), "100%") {
			t.Errorf("empty job not complete: %q", buf.String())
		}
	}
}
