package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hlfs/hlfs/internal/admin"
	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/lfs"
	"github.com/hlfs/hlfs/nbdserver"
)

var (
	_ nbdserver.Catalog  = (*volumeCatalog)(nil)
	_ nbdserver.Releaser = (*volumeCatalog)(nil)
	_ admin.Handler      = (*volumeCatalog)(nil)
	_ nbdserver.Export   = (*lfs.SnapshotView)(nil)
	_ nbdserver.Export   = (*lfs.Volume)(nil)
	_ nbdserver.Export   = (*lfs.Roaming)(nil)
	// Writes hand their buffers over (nbdserver.PayloadKeeper).
	_ nbdserver.PayloadKeeper = (*lfs.Volume)(nil)
	_ nbdserver.PayloadKeeper = (*lfs.Roaming)(nil)
)

// probeIdle is how long a volume that only answered probes (NBD_OPT_INFO,
// meta contexts: nbdinfo --list asks them of every export) stays open
// unused, when that is less than the idle time.
const probeIdle = 2 * time.Second

// maxParallelCloses bounds the volumes flushed and closed at once, by idle
// close and at shutdown.
const maxParallelCloses = 16

// volumeLife is how the catalog opens and closes a volume: serve wires it
// to lfs.Open (serveVolumes.open) and Close (serveVolumes.close); tests
// wrap it. Both are called without the catalog's lock, possibly for several
// volumes at once, never twice at once for one volume.
type volumeLife struct {
	// open opens volume name for serving, background work started.
	open func(name string) (*lfs.Roaming, error)
	// close flushes and closes v, background work stopped.
	close func(v *lfs.Roaming) error
}

// volState is where a volume is in its life in the catalog:
//
//	(absent) --acquire--> opening --ok--> open --idle--> closing --> (absent)
//	                         \--failed--> (absent)            \--flush failed--> open
//
// Only open volumes are used; acquire waits out opening and closing.
type volState int

const (
	volOpening volState = iota
	volOpen
	volClosing
)

// volEntry is one volume the catalog has open, or is opening or closing.
// Its fields are guarded by volumeCatalog.mu.
//
// Invariant: vol != nil iff state is volOpen or volClosing; refs > 0 only
// while volOpen; pinned entries are never volClosing before closeAll.
type volEntry struct {
	name  string
	state volState
	vol   *lfs.Roaming // the owner's Volume or a standby's view (serve_roam.go)
	// done is closed when opening or closing ends (a new one per closing);
	// err is then why opening failed.
	done chan struct{}
	err  error
	// refs counts the lookups and admin requests not yet released.
	refs int
	// pinned volumes (named on the command line) are never closed idle.
	pinned bool
	// used says whether a connection transmitted on it since it opened;
	// until then it closes after probeIdle.
	used bool
	// idleSince is when refs last dropped to 0 (or the open ended).
	idleSince time.Time
	// views are the open snapshot exports of the volume, by export name,
	// opened on viewsOf: a role change replaces the Volume, and closes the
	// views of the old one with it.
	views   map[string]*lfs.SnapshotView
	viewsOf *lfs.Volume
}

// volumeCatalog is what serve serves: the nbdserver.Catalog of the volumes
// of the store and their snapshots, and the admin.Handler that creates and
// removes snapshots of those volumes and cleans and scrubs them on request.
// An export name is a volume name or VOLUME@SNAPSHOT; snapshots are
// read-only exports, opened (as lfs.SnapshotView) the first time a client
// asks for them and kept while their volume is open.
//
// With all set, every volume and snapshot of the store is an export, as
// the store is now: a volume is opened when a client asks for it (or an
// admin request names it), counted while connections use it, and closed
// once nobody has used it for idle (see closeIdle, run by reapIdle).
// Otherwise exactly the exports named on the command line are, their
// volumes opened at start (openNamed) and kept open.
//
// All methods are safe for concurrent use; see docs/design.md "Serving a
// fleet".
type volumeCatalog struct {
	c      *cli // words errors for admin clients
	logger *slog.Logger
	all    bool
	idle   time.Duration // close after this long unused (all only); 0: never
	life   volumeLife
	// list returns the volumes of the store for LIST (all only) and the
	// snapshot names the store index knows of them.
	list func() ([]string, map[string][]string, error)
	now  func() time.Time

	stopReap chan struct{}  // closed by closeAll: reapIdle returns
	reaped   sync.WaitGroup // reapIdle running

	// mu guards the fields below and every volEntry. No I/O happens under
	// it: opening and closing happen with the entry marked.
	mu struct {
		sync.Mutex
		vols   map[string]*volEntry // by volume name
		named  []string             // exports named, when !all
		closed bool                 // closeAll ran: nothing opens
	}
}

func newVolumeCatalog(c *cli, logger *slog.Logger, all bool, idle time.Duration, life volumeLife, list func() ([]string, map[string][]string, error)) *volumeCatalog {
	cat := &volumeCatalog{c: c, logger: logger, all: all, idle: idle, life: life, list: list,
		now: time.Now, stopReap: make(chan struct{})}
	cat.mu.vols = make(map[string]*volEntry)
	return cat
}

// errCatalogClosed is acquire's error once closeAll ran.
var errCatalogClosed = fmt.Errorf("%w: the server is shutting down", nbdserver.ErrExportRefused)

// acquire returns the open volume name with a reference taken, waiting
// while another goroutine opens or closes it, and opening it when no one
// has and mayOpen is set (else it fails with lfs.ErrNotFound). The caller
// releases the reference with release.
func (cat *volumeCatalog) acquire(name string, mayOpen bool) (*volEntry, error) {
	cat.mu.Lock()
	defer cat.mu.Unlock()
	for {
		if cat.mu.closed {
			return nil, errCatalogClosed
		}
		e := cat.mu.vols[name]
		switch {
		case e == nil && !mayOpen:
			return nil, lfs.ErrNotFound
		case e == nil:
			e = &volEntry{name: name, state: volOpening, done: make(chan struct{})}
			cat.mu.vols[name] = e
			cat.mu.Unlock()
			v, err := cat.life.open(name)
			cat.mu.Lock()
			close(e.done)
			if err != nil {
				delete(cat.mu.vols, name)
				e.err = err
				return nil, err
			}
			e.vol, e.state, e.idleSince = v, volOpen, cat.now()
			e.refs++
			return e, nil
		case e.state == volOpen:
			e.refs++
			return e, nil
		default:
			done := e.done
			cat.mu.Unlock()
			<-done
			cat.mu.Lock()
			if e.err != nil {
				return nil, e.err // the open we waited for failed
			}
		}
	}
}

// release drops a reference acquire took.
func (cat *volumeCatalog) release(e *volEntry) {
	cat.mu.Lock()
	defer cat.mu.Unlock()
	if e.refs <= 0 {
		panic("hlfs: release of " + e.name + " without acquire")
	}
	e.refs--
	if e.refs == 0 {
		e.idleSince = cat.now()
	}
}

// openNamed opens the volume of export name (VOLUME or VOLUME@SNAPSHOT) for
// good: it stays open until closeAll. A snapshot's view is opened too.
func (cat *volumeCatalog) openNamed(name string) error {
	vol, snap, isSnap := name, "", strings.Contains(name, "@")
	if isSnap {
		var err error
		if vol, snap, err = lfs.ParseSnapshotRef(name); err != nil {
			return err
		}
	}
	e, err := cat.acquire(vol, true)
	if err != nil {
		return fmt.Errorf("cannot serve %s: %s", name, cliutil.Message(cat.c.volumeError(vol, err)))
	}
	defer cat.release(e)
	cat.mu.Lock()
	e.pinned = true
	cat.mu.named = append(cat.mu.named, name)
	cat.mu.Unlock()
	if !isSnap {
		return nil
	}
	if _, err := cat.view(e, name, snap); err != nil {
		return fmt.Errorf("cannot serve %s: %s", name, cliutil.Message(cat.c.snapshotError(vol, snap, err)))
	}
	return nil
}

// openVolumes returns the volumes open now, sorted by name.
func (cat *volumeCatalog) openVolumes() []*lfs.Roaming {
	cat.mu.Lock()
	defer cat.mu.Unlock()
	var vols []*lfs.Roaming
	for _, e := range cat.mu.vols {
		if e.state == volOpen {
			vols = append(vols, e.vol)
		}
	}
	slices.SortFunc(vols, func(a, b *lfs.Roaming) int { return strings.Compare(a.Name(), b.Name()) })
	return vols
}

// Names implements nbdserver.Catalog: the exports named on the command line,
// or every volume of the store followed by its snapshots in the order they
// were taken: an open volume's own, else those the store index records
// (a volume the index does not describe lists none without opening it;
// its snapshots are served all the same).
func (cat *volumeCatalog) Names() []string {
	if !cat.all {
		cat.mu.Lock()
		defer cat.mu.Unlock()
		return slices.Clone(cat.mu.named)
	}
	open := make(map[string]*lfs.Roaming)
	for _, v := range cat.openVolumes() {
		open[v.Name()] = v
	}
	vols, indexed, err := cat.list()
	if err != nil {
		cat.logger.Warn("cannot list the store; LIST shows the open volumes only", "err", err)
		vols = nil
		for name := range open {
			vols = append(vols, name)
		}
		slices.Sort(vols)
	}
	names := make([]string, 0, len(vols))
	for _, name := range vols {
		names = append(names, name)
		snaps := indexed[name]
		if v := open[name]; v != nil {
			snaps = v.Current().SnapshotNames()
		}
		for _, s := range snaps {
			names = append(names, name+"@"+s)
		}
	}
	return names
}

// Lookup implements nbdserver.Catalog. A successful lookup holds the volume
// open until Release.
func (cat *volumeCatalog) Lookup(name string) (nbdserver.Export, nbdserver.ExportInfo, error) {
	unknown := func() (nbdserver.Export, nbdserver.ExportInfo, error) {
		return nil, nbdserver.ExportInfo{}, fmt.Errorf("%w: %q", nbdserver.ErrUnknownExport, name)
	}
	volName, snap, isSnap := name, "", strings.Contains(name, "@")
	var err error
	if isSnap {
		volName, snap, err = lfs.ParseSnapshotRef(name)
	} else {
		err = lfs.ValidateName(name)
	}
	if err != nil {
		return unknown()
	}
	if !cat.all {
		cat.mu.Lock()
		wanted := slices.Contains(cat.mu.named, name)
		cat.mu.Unlock()
		if !wanted {
			return unknown()
		}
	}
	e, err := cat.acquire(volName, cat.all)
	if err != nil {
		return nil, nbdserver.ExportInfo{}, cat.lookupError(name, volName, err)
	}
	info := nbdserver.ExportInfo{PreferredBlockSize: uint32(e.vol.BlockSize())}
	if !isSnap {
		info.Description = "hlfs volume " + name
		return e.vol, info, nil
	}
	view, err := cat.view(e, name, snap)
	if err != nil {
		cat.release(e)
		if errors.Is(err, lfs.ErrSnapshotNotFound) {
			return unknown()
		}
		return nil, nbdserver.ExportInfo{}, err
	}
	info.ReadOnly = true
	info.Description = "hlfs snapshot " + name
	return view, info, nil
}

// lookupError words why volume vol of export name could not be opened for
// the NBD client.
func (cat *volumeCatalog) lookupError(name, vol string, err error) error {
	var inUse *lfs.InUseError
	switch {
	case errors.Is(err, lfs.ErrNotFound), errors.Is(err, lfs.ErrInvalidName):
		return fmt.Errorf("%w: %q", nbdserver.ErrUnknownExport, name)
	case errors.Is(err, nbdserver.ErrExportRefused):
		return err
	case errors.As(err, &inUse):
		// Issue 12: a standby open will wait for the owner instead.
		cat.logger.Info("not serving "+name+": "+cliutil.Message(err), "volume", vol)
		return fmt.Errorf("%w: volume %s is in use by pid %d on host %s", nbdserver.ErrExportRefused,
			vol, inUse.Owner.PID, inUse.Owner.Host)
	case errors.Is(err, lfs.ErrDamaged):
		cat.logger.Warn("not serving "+name+": "+cliutil.Message(damagedError(vol, err)), "volume", vol)
		return fmt.Errorf("%w: volume %s is damaged (see 'hlfs fsck %s')", nbdserver.ErrExportRefused, vol, vol)
	}
	return fmt.Errorf("opening %s: %s", vol, cliutil.Message(cat.c.volumeError(vol, err)))
}

// Release implements nbdserver.Releaser.
func (cat *volumeCatalog) Release(name string, transmitted bool) {
	vol, _, _ := strings.Cut(name, "@")
	cat.mu.Lock()
	e := cat.mu.vols[vol]
	if e != nil && transmitted {
		e.used = true
	}
	cat.mu.Unlock()
	if e == nil {
		panic("hlfs: Release of " + name + ", which is not open")
	}
	cat.release(e)
}

// view returns the open view of snapshot snap of e, export name, opening
// it when no one has. e is held.
func (cat *volumeCatalog) view(e *volEntry, name, snap string) (*lfs.SnapshotView, error) {
	cur := e.vol.Current()
	cat.mu.Lock()
	var stale map[string]*lfs.SnapshotView
	if e.viewsOf != cur {
		// The volume changed roles (or a standby's view followed the
		// owner) since these views opened: their Volume is closed.
		stale, e.views, e.viewsOf = e.views, nil, cur
	}
	view := e.views[name]
	cat.mu.Unlock()
	for _, v := range stale {
		v.Close()
	}
	if view != nil {
		return view, nil
	}
	view, err := cur.SnapshotView(snap)
	if err != nil {
		return nil, err
	}
	cat.mu.Lock()
	defer cat.mu.Unlock()
	if e.viewsOf != cur {
		return view, nil // a role change meanwhile: this client's own view
	}
	if other := e.views[name]; other != nil {
		view.Close() // another client opened it meanwhile
		return other, nil
	}
	if e.views == nil {
		e.views = make(map[string]*lfs.SnapshotView)
	}
	e.views[name] = view
	return view, nil
}

// closeViews closes the snapshot views of e, which nobody uses.
func (cat *volumeCatalog) closeViews(views map[string]*lfs.SnapshotView) {
	for name, view := range views {
		if err := view.Close(); err != nil {
			cat.logger.Warn("closing a snapshot view failed", "snapshot", name, "err", err)
		}
	}
}

// reapIdle closes idle volumes every tick until closeAll; serve runs it in
// a goroutine when all is set and idle is positive.
func (cat *volumeCatalog) reapIdle() {
	tick := min(max(min(cat.idle, probeIdle)/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-cat.stopReap:
			return
		case <-t.C:
			cat.closeIdle()
		}
	}
}

// closeIdle flushes and closes every volume that is not pinned and that
// nobody used for the idle time (probeIdle, if shorter, when no connection
// transmitted on it since it opened), and returns once they are closed. A volume
// whose flush fails stays open (and is tried again after another idle
// time): nothing acknowledged is dropped.
func (cat *volumeCatalog) closeIdle() {
	now := cat.now()
	var closing []*volEntry
	cat.mu.Lock()
	if cat.mu.closed || cat.idle <= 0 {
		cat.mu.Unlock()
		return
	}
	for _, e := range cat.mu.vols {
		idle := cat.idle
		if !e.used {
			idle = min(idle, probeIdle)
		}
		if e.state == volOpen && !e.pinned && e.refs == 0 && now.Sub(e.idleSince) >= idle {
			e.state, e.done = volClosing, make(chan struct{})
			closing = append(closing, e)
		}
	}
	cat.mu.Unlock()
	parallel(closing, func(e *volEntry) {
		cat.closeViews(e.views) // nobody holds e: no view is in use
		ferr := e.vol.Flush()
		var cerr error
		if ferr != nil {
			cat.logger.Error("flushing an idle volume failed; it stays open", "volume", e.name, "err", ferr)
		} else if cerr = cat.life.close(e.vol); cerr != nil {
			cat.logger.Error("closing an idle volume failed", "volume", e.name, "err", cerr)
		}
		cat.mu.Lock()
		defer cat.mu.Unlock()
		e.views = nil
		if ferr != nil {
			e.state, e.idleSince = volOpen, cat.now()
		} else {
			delete(cat.mu.vols, e.name)
			switch {
			case cerr != nil:
			case e.used:
				cat.logger.Info("closed idle volume " + e.name)
			default:
				cat.logger.Debug("closed probed volume " + e.name)
			}
		}
		close(e.done)
	})
}

// closeAll flushes and closes every volume; nothing opens after it. The
// caller makes sure nobody uses a volume any more (the NBD server and the
// admin socket are shut down). It returns the first error.
func (cat *volumeCatalog) closeAll() error {
	close(cat.stopReap)
	cat.reaped.Wait()
	cat.mu.Lock()
	cat.mu.closed = true
	var all []*volEntry
	for _, e := range cat.mu.vols {
		if e.state == volOpen {
			e.state, e.done = volClosing, make(chan struct{})
			all = append(all, e)
		}
	}
	cat.mu.Unlock()
	var mu sync.Mutex
	var first error
	parallel(all, func(e *volEntry) {
		cat.closeViews(e.views)
		err := cat.life.close(e.vol)
		cat.mu.Lock()
		delete(cat.mu.vols, e.name)
		close(e.done)
		cat.mu.Unlock()
		mu.Lock()
		first = firstErr(first, err)
		mu.Unlock()
	})
	return first
}

// parallel calls fn for every entry, at most maxParallelCloses at once, and
// returns when all calls have.
func parallel(entries []*volEntry, fn func(*volEntry)) {
	sem := make(chan struct{}, maxParallelCloses)
	var wg sync.WaitGroup
	for _, e := range entries {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(e)
		})
	}
	wg.Wait()
}

// CreateSnapshot implements admin.Handler.
func (cat *volumeCatalog) CreateSnapshot(vol, snap string) error {
	e, err := cat.adminVolume(vol, snap)
	if err != nil {
		return err
	}
	defer cat.release(e)
	v, err := cat.ownerVolume(e)
	if err != nil {
		return err
	}
	if err := v.CreateSnapshot(snap); err != nil {
		return cat.adminError(vol, snap, err)
	}
	cat.logger.Info("created snapshot " + vol + "@" + snap)
	return nil
}

// DeleteSnapshot implements admin.Handler. The snapshot's export goes with
// it: clients still reading it get errors.
func (cat *volumeCatalog) DeleteSnapshot(vol, snap string) error {
	e, err := cat.adminVolume(vol, snap)
	if err != nil {
		return err
	}
	defer cat.release(e)
	v, err := cat.ownerVolume(e)
	if err != nil {
		return err
	}
	if err := v.DeleteSnapshot(snap); err != nil {
		return cat.adminError(vol, snap, err)
	}
	name := vol + "@" + snap
	cat.mu.Lock()
	view := e.views[name]
	delete(e.views, name)
	cat.mu.named = slices.DeleteFunc(cat.mu.named, func(n string) bool { return n == name })
	cat.mu.Unlock()
	if view != nil {
		if err := view.Close(); err != nil {
			cat.logger.Warn("closing a snapshot view failed", "snapshot", name, "err", err)
		}
	}
	cat.logger.Info("removed snapshot " + name)
	return nil
}

// GC implements admin.Handler: it cleans a served volume now, as "hlfs gc"
// does a volume nobody serves. The background cleaner, if on, waits
// meanwhile.
func (cat *volumeCatalog) GC(vol string, opts admin.GCOptions) (lfs.GCStats, error) {
	e, err := cat.adminAcquire(vol)
	if err != nil {
		return lfs.GCStats{}, err
	}
	defer cat.release(e)
	v, err := cat.ownerVolume(e)
	if err != nil {
		return lfs.GCStats{}, err
	}
	stats, err := v.GC(lfs.GCOptions{Rate: opts.Rate, MaxUtilization: opts.MaxUtilization, Defrag: opts.Defrag})
	if err != nil {
		cat.logger.Error("gc failed", "volume", vol, "err", err)
		return lfs.GCStats{}, fmt.Errorf("gc of %s failed: %s", vol, cliutil.Message(cat.c.volumeError(vol, err)))
	}
	cat.logger.Info("cleaned "+vol+" on request", "segments_cleaned", stats.SegmentsCleaned,
		"segments_deleted", stats.SegmentsDeleted, "bytes_copied", stats.BytesCopied, "bytes_freed", stats.BytesDeleted)
	return stats, nil
}

// Scrub implements admin.Handler: it verifies a served volume now, as
// "hlfs scrub" does a volume nobody serves.
func (cat *volumeCatalog) Scrub(vol string, opts admin.ScrubOptions) (lfs.ScrubReport, error) {
	e, err := cat.adminAcquire(vol)
	if err != nil {
		return lfs.ScrubReport{}, err
	}
	defer cat.release(e)
	v, err := cat.ownerVolume(e)
	if err != nil {
		return lfs.ScrubReport{}, err
	}
	rep, err := v.Scrub(lfs.ScrubOptions{Rate: opts.Rate})
	if err != nil {
		cat.logger.Error("scrub failed", "volume", vol, "err", err)
		return lfs.ScrubReport{}, fmt.Errorf("scrub of %s failed: %s", vol, cliutil.Message(cat.c.volumeError(vol, err)))
	}
	cat.logger.Info("scrubbed "+vol+" on request", "records", rep.Records, "bytes_verified", rep.BytesVerified, "damaged_ranges", len(rep.Damaged))
	return rep, nil
}

// ownerVolume returns the owner Volume of e for an admin request, which
// only the owner carries out (its admin socket is the one the owner lock
// names; a standby here got the request in a race with a hand-off).
func (cat *volumeCatalog) ownerVolume(e *volEntry) (*lfs.Volume, error) {
	if !e.vol.Owner() {
		return nil, fmt.Errorf("%s is served here as a standby (pid %d): another process owns it now; try again", e.name, os.Getpid())
	}
	return e.vol.Current(), nil
}

// adminVolume checks an admin request's names and returns its volume, held.
func (cat *volumeCatalog) adminVolume(vol, snap string) (*volEntry, error) {
	if _, _, err := snapshotArg(vol + "@" + snap); err != nil {
		return nil, errors.New(cliutil.Message(err))
	}
	return cat.adminAcquire(vol)
}

// adminAcquire returns volume vol of an admin request, held: open already,
// or opened now when every volume is served (the request came through an
// owner lock that named this server just before the volume closed idle).
func (cat *volumeCatalog) adminAcquire(vol string) (*volEntry, error) {
	if _, err := volumeArg(vol); err != nil {
		return nil, errors.New(cliutil.Message(err))
	}
	e, err := cat.acquire(vol, cat.all)
	switch {
	case err == nil:
		return e, nil
	case !cat.all && errors.Is(err, lfs.ErrNotFound):
		return nil, fmt.Errorf("%s is not open in this server (pid %d)", vol, os.Getpid())
	case errors.Is(err, nbdserver.ErrExportRefused):
		return nil, fmt.Errorf("%s: %s", vol, strings.TrimPrefix(err.Error(), nbdserver.ErrExportRefused.Error()+": "))
	}
	return nil, errors.New(cliutil.Message(cat.c.volumeError(vol, err)))
}

// adminError words err for the admin client, which prints it as is.
func (cat *volumeCatalog) adminError(vol, snap string, err error) error {
	return errors.New(cliutil.Message(cat.c.snapshotError(vol, snap, err)))
}
