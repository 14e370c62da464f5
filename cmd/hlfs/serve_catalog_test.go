package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/lfs"
	"github.com/hlfs/hlfs/nbdserver"
)

// catalogFixture is a volumeCatalog serving every volume of an in-memory
// store, with a clock the test moves and counts of opens and closes.
type catalogFixture struct {
	t   *testing.T
	st  objstore.Store
	cat *volumeCatalog

	mu     sync.Mutex
	clock  time.Time
	opens  map[string]int
	closes map[string]int
	// beforeOpen and beforeClose, when set, run at the start of
	// life.open and life.close (to hold them).
	beforeOpen, beforeClose func(name string)
}

const testIdle = time.Minute

// newCatalogFixture creates volumes vols of 1 MiB and a catalog of every
// volume with idle close after testIdle.
func newCatalogFixture(t *testing.T, vols ...string) *catalogFixture {
	t.Helper()
	f := &catalogFixture{t: t, st: objstore.NewMemStore(false, 1), clock: time.Unix(1e9, 0),
		opens: map[string]int{}, closes: map[string]int{}}
	for _, name := range vols {
		if err := lfs.Create(f.st, name, lfs.Config{Size: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	logger := slog.New(slog.DiscardHandler)
	life := volumeLife{
		open: func(name string) (*lfs.Roaming, error) {
			if f.beforeOpen != nil {
				f.beforeOpen(name)
			}
			v, err := lfs.OpenRoaming(f.st, name, lfs.Options{Logger: logger}, lfs.RoamOptions{})
			if err == nil {
				f.mu.Lock()
				f.opens[name]++
				f.mu.Unlock()
			}
			return v, err
		},
		close: func(v *lfs.Roaming) error {
			if f.beforeClose != nil {
				f.beforeClose(v.Name())
			}
			f.mu.Lock()
			f.closes[v.Name()]++
			f.mu.Unlock()
			return v.Close()
		},
	}
	list := func() ([]string, map[string][]string, error) { vols, err := lfs.List(f.st); return vols, nil, err }
	c := newCLI(t.Context(), io.Discard, io.Discard, func(string) string { return "" })
	f.cat = newVolumeCatalog(c, logger, true, testIdle, life, list)
	f.cat.now = f.now
	t.Cleanup(func() {
		if err := f.cat.closeAll(); err != nil {
			t.Errorf("closeAll: %v", err)
		}
	})
	return f
}

func (f *catalogFixture) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clock
}

func (f *catalogFixture) advance(d time.Duration) {
	f.mu.Lock()
	f.clock = f.clock.Add(d)
	f.mu.Unlock()
}

// counts returns how often name was opened and closed.
func (f *catalogFixture) counts(name string) (opens, closes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opens[name], f.closes[name]
}

// lookup looks name up and fails the test on an error.
func (f *catalogFixture) lookup(name string) nbdserver.Export {
	f.t.Helper()
	exp, _, err := f.cat.Lookup(name)
	if err != nil {
		f.t.Fatalf("Lookup %s: %v", name, err)
	}
	return exp
}

// owned reports whether volume name's owner lock is held.
func (f *catalogFixture) owned(name string) bool {
	f.t.Helper()
	info, err := lfs.Stat(f.st, name)
	if err != nil {
		f.t.Fatal(err)
	}
	return info.Owner != nil
}

// A volume opens on the first lookup, is shared by later ones, stays open
// while held and closes once unused for the idle time, releasing its owner
// lock; the next lookup opens it again with its data.
func TestCatalogOpensOnDemandAndClosesIdle(t *testing.T) {
	f := newCatalogFixture(t, "a", "b")
	if f.owned("a") || f.owned("b") {
		t.Fatal("volumes owned before any lookup")
	}
	e1 := f.lookup("a")
	e2 := f.lookup("a")
	if e1 != e2 {
		t.Error("two lookups of a got two exports")
	}
	if opens, _ := f.counts("a"); opens != 1 || !f.owned("a") || f.owned("b") {
		t.Fatalf("a opened %d times, owned %v; b owned %v", opens, f.owned("a"), f.owned("b"))
	}
	data := bytes.Repeat([]byte("idle"), 1024)
	if err := e1.WriteAt(data, 4096, false); err != nil { // not flushed by the client
		t.Fatal(err)
	}
	f.cat.Release("a", true)

	// Still held by the other lookup: not closed however long.
	f.advance(10 * testIdle)
	f.cat.closeIdle()
	if _, closes := f.counts("a"); closes != 0 {
		t.Fatal("a closed while held")
	}
	f.cat.Release("a", true)
	f.advance(testIdle - time.Second)
	f.cat.closeIdle()
	if _, closes := f.counts("a"); closes != 0 {
		t.Fatal("a closed before the idle time")
	}
	f.advance(time.Second)
	f.cat.closeIdle()
	if _, closes := f.counts("a"); closes != 1 || f.owned("a") {
		t.Fatalf("a closed %d times after the idle time, owned %v", closes, f.owned("a"))
	}
	if len(f.cat.openVolumes()) != 0 {
		t.Errorf("open after idle close: %v", f.cat.openVolumes())
	}

	got := make([]byte, len(data))
	if err := f.lookup("a").ReadAt(got, 4096); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after reopening, read %v, equal %v", err, bytes.Equal(got, data))
	}
	if opens, _ := f.counts("a"); opens != 2 {
		t.Errorf("a opened %d times, want 2", opens)
	}
	f.cat.Release("a", true)
}

// A volume only probed (NBD_OPT_INFO, as nbdinfo --list does for every
// export) closes after probeIdle; once a connection transmitted on it, after
// the idle time.
func TestCatalogProbeClosesSooner(t *testing.T) {
	f := newCatalogFixture(t, "a")
	f.lookup("a")
	f.cat.Release("a", false)
	f.advance(probeIdle)
	f.cat.closeIdle()
	if _, closes := f.counts("a"); closes != 1 {
		t.Fatalf("a probed volume not closed after %s", probeIdle)
	}
	f.lookup("a")
	f.cat.Release("a", true)
	f.lookup("a") // a probe after a transmission
	f.cat.Release("a", false)
	f.advance(probeIdle)
	f.cat.closeIdle()
	if _, closes := f.counts("a"); closes != 1 {
		t.Fatal("a volume a connection used closed after the probe time")
	}
	f.advance(testIdle)
	f.cat.closeIdle()
	if _, closes := f.counts("a"); closes != 2 {
		t.Fatal("not closed after the idle time")
	}
}

// Snapshots hold their volume; LIST shows every volume and the snapshots
// of open ones; an unknown name opens nothing.
func TestCatalogSnapshotsAndNames(t *testing.T) {
	f := newCatalogFixture(t, "vm1", "vm2")
	v, err := lfs.Open(f.st, "vm1", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.CreateSnapshot("s1"); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.cat.Names(), ","); got != "vm1,vm2" {
		t.Errorf("Names with nothing open = %s", got)
	}
	for _, name := range []string{"nope", "vm1@nope", "nope@s1", "x/y", "vm1@"} {
		if _, _, err := f.cat.Lookup(name); !errors.Is(err, nbdserver.ErrUnknownExport) {
			t.Errorf("Lookup %s: %v, want unknown export", name, err)
		}
	}
	// Only vm1 was opened (to look for its snapshot "nope"), and nothing
	// holds it.
	if opens, _ := f.counts("vm1"); opens != 1 || len(f.cat.openVolumes()) != 1 {
		t.Errorf("failed lookups opened vm1 %d times, %d volumes open", opens, len(f.cat.openVolumes()))
	}
	exp, info, err := f.cat.Lookup("vm1@s1")
	if err != nil || !info.ReadOnly || exp.Size() != 1<<20 {
		t.Fatalf("Lookup vm1@s1: %v %+v", err, info)
	}
	if got := strings.Join(f.cat.Names(), ","); got != "vm1,vm1@s1,vm2" {
		t.Errorf("Names with vm1 open = %s", got)
	}
	f.advance(2 * testIdle)
	f.cat.closeIdle()
	if _, closes := f.counts("vm1"); closes != 0 {
		t.Fatal("vm1 closed while its snapshot is served")
	}
	f.cat.Release("vm1@s1", true)
	f.advance(testIdle)
	f.cat.closeIdle()
	if _, closes := f.counts("vm1"); closes != 1 {
		t.Fatal("vm1 not closed after its snapshot's last use")
	}
}

// Two lookups of a volume nobody has open open it once.
func TestCatalogConcurrentOpen(t *testing.T) {
	f := newCatalogFixture(t, "a")
	entered := make(chan struct{}, 1)
	proceed := make(chan struct{})
	var calls atomic.Int32
	f.beforeOpen = func(string) {
		if calls.Add(1) == 1 { // the first open waits; a second would not
			entered <- struct{}{}
			<-proceed
		}
	}
	exps := make(chan nbdserver.Export, 2)
	go func() { exps <- f.lookup("a") }()
	<-entered // the first open is under way
	go func() { exps <- f.lookup("a") }()
	// The second waits for the first open (it cannot finish before).
	select {
	case <-exps:
		t.Fatal("a lookup returned before the open finished")
	case <-time.After(50 * time.Millisecond):
	}
	close(proceed)
	if a, b := <-exps, <-exps; a != b {
		t.Error("two exports for one volume")
	}
	if opens, _ := f.counts("a"); opens != 1 {
		t.Errorf("opened %d times", opens)
	}
	f.cat.Release("a", true)
	f.cat.Release("a", true)
}

// A lookup arriving while the volume is being closed idle waits for the
// close, then opens the volume again: never an export that is closing.
func TestCatalogLookupRacesIdleClose(t *testing.T) {
	f := newCatalogFixture(t, "a")
	f.lookup("a")
	f.cat.Release("a", true)
	closing := make(chan struct{})
	proceed := make(chan struct{})
	f.beforeClose = func(string) {
		close(closing)
		<-proceed
	}
	f.advance(testIdle)
	closed := make(chan struct{})
	go func() {
		f.cat.closeIdle()
		close(closed)
	}()
	<-closing
	exps := make(chan nbdserver.Export, 1)
	go func() { exps <- f.lookup("a") }()
	select {
	case <-exps:
		t.Fatal("lookup returned while the volume was closing")
	case <-time.After(50 * time.Millisecond):
	}
	f.beforeClose = nil
	close(proceed)
	<-closed
	exp := <-exps
	if opens, closes := f.counts("a"); opens != 2 || closes != 1 {
		t.Fatalf("opens %d closes %d, want 2 and 1", opens, closes)
	}
	if err := exp.WriteAt([]byte("x"), 0, true); err != nil {
		t.Fatalf("the export after the race: %v", err)
	}
	f.cat.Release("a", true)
}

// A volume removed (after its idle close) disappears from the list and
// from lookups; one served by another process is served as a standby.
func TestCatalogRemovedAndInUse(t *testing.T) {
	f := newCatalogFixture(t, "gone", "busy")
	f.lookup("gone")
	if err := lfs.Remove(f.st, "gone"); !errors.Is(err, lfs.ErrInUse) {
		t.Fatalf("Remove of an open volume: %v", err)
	}
	f.cat.Release("gone", true)
	f.advance(testIdle)
	f.cat.closeIdle()
	if err := lfs.Remove(f.st, "gone"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.cat.Names(), ","); got != "busy" {
		t.Errorf("Names = %s", got)
	}
	if _, _, err := f.cat.Lookup("gone"); !errors.Is(err, nbdserver.ErrUnknownExport) {
		t.Errorf("Lookup of a removed volume: %v", err)
	}

	// Issue 12: a volume another process owns is served as a standby:
	// its reads see the owner's durable state; without a hand-off
	// channel (this fixture has none) its writes fail.
	other, err := lfs.Open(f.st, "busy", lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.WriteAt([]byte("owner"), 0, false); err != nil {
		t.Fatal(err)
	}
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	exp := f.lookup("busy")
	if r, ok := exp.(*lfs.Roaming); !ok || r.Owner() {
		t.Fatalf("Lookup of a volume served elsewhere: %T, want a standby lfs.Roaming", exp)
	}
	buf := make([]byte, 5)
	if err := exp.ReadAt(buf, 0); err != nil || string(buf) != "owner" {
		t.Errorf("standby read: %q, %v", buf, err)
	}
	if err := exp.WriteAt([]byte("x"), 0, false); !errors.Is(err, lfs.ErrStandby) {
		t.Errorf("standby write without a channel: %v, want ErrStandby", err)
	}
	f.cat.Release("busy", true)
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
}

// Volumes named on the command line stay open however long unused, and
// only the named exports are served.
func TestCatalogNamedVolumesStayOpen(t *testing.T) {
	f := newCatalogFixture(t, "a", "b")
	f.cat.all = false
	if err := f.cat.openNamed("a"); err != nil {
		t.Fatal(err)
	}
	if err := f.cat.openNamed("nope"); err == nil || !strings.Contains(err.Error(), `cannot serve nope`) {
		t.Errorf("openNamed nope: %v", err)
	}
	f.advance(10 * testIdle)
	f.cat.closeIdle()
	if _, closes := f.counts("a"); closes != 0 || !f.owned("a") {
		t.Fatal("a named volume was closed idle")
	}
	if _, _, err := f.cat.Lookup("b"); !errors.Is(err, nbdserver.ErrUnknownExport) {
		t.Errorf("Lookup of an unnamed volume: %v", err)
	}
	if opens, _ := f.counts("b"); opens != 0 {
		t.Error("an unnamed volume was opened")
	}
	if got := strings.Join(f.cat.Names(), ","); got != "a" {
		t.Errorf("Names = %s", got)
	}
	f.lookup("a")
	f.cat.Release("a", true)
}

// closeAll flushes and closes everything; nothing opens after it.
func TestCatalogCloseAll(t *testing.T) {
	f := newCatalogFixture(t, "a", "b")
	exp := f.lookup("a")
	if err := exp.WriteAt([]byte("kept"), 0, false); err != nil {
		t.Fatal(err)
	}
	f.cat.Release("a", true)
	f.lookup("b")
	f.cat.Release("b", true)
	if err := f.cat.closeAll(); err != nil {
		t.Fatal(err)
	}
	if f.owned("a") || f.owned("b") {
		t.Error("volumes owned after closeAll")
	}
	if _, _, err := f.cat.Lookup("a"); !errors.Is(err, nbdserver.ErrExportRefused) {
		t.Errorf("Lookup after closeAll: %v", err)
	}
	v, err := lfs.Open(f.st, "a", lfs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	got := make([]byte, 4)
	if err := v.ReadAt(got, 0); err != nil || string(got) != "kept" {
		t.Errorf("after closeAll read %q, %v", got, err)
	}
	f.cat.stopReap = make(chan struct{}) // the cleanup's closeAll closes it again
}
