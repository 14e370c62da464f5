package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/hlfs/hlfs/internal/admin"
	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/lfs"
	"github.com/hlfs/hlfs/nbdserver"
)

var (
	_ nbdserver.Catalog = (*volumeCatalog)(nil)
	_ admin.Handler     = (*volumeCatalog)(nil)
	_ nbdserver.Export  = (*lfs.SnapshotView)(nil)
	_ nbdserver.Export  = (*lfs.Volume)(nil)
)

// servedVolume is a volume serve holds open.
type servedVolume struct {
	vol *lfs.Volume
	// exported says whether the volume itself is an export; a volume opened
	// only for snapshots named on the command line is not.
	exported bool
}

// volumeCatalog is what serve serves: the nbdserver.Catalog of its volumes
// and their snapshots, and the admin.Handler that creates and removes
// snapshots of those volumes and cleans them on request. An export name is
// a volume name or VOLUME@SNAPSHOT; snapshots are read-only exports, opened
// (as lfs.SnapshotView) the first time a client asks for them and kept open
// until the snapshot is removed or serving ends.
//
// With all set, every snapshot of every volume is exported, including those
// created while serving; otherwise exactly the exports named on the command
// line are.
type volumeCatalog struct {
	c      *cli // words errors for admin clients
	logger *slog.Logger
	all    bool

	// mu guards the fields below. No I/O happens under it except closing a
	// snapshot view that lost a race.
	mu struct {
		sync.Mutex
		order  []string                     // the volumes, in the order named
		vols   map[string]servedVolume      // by volume name
		named  []string                     // exports named, when !all
		views  map[string]*lfs.SnapshotView // open snapshot exports by name
		closed bool                         // views closed; no new ones open
	}
}

func newVolumeCatalog(c *cli, logger *slog.Logger, all bool) *volumeCatalog {
	cat := &volumeCatalog{c: c, logger: logger, all: all}
	cat.mu.vols = make(map[string]servedVolume)
	cat.mu.views = make(map[string]*lfs.SnapshotView)
	return cat
}

// add records an open volume.
func (cat *volumeCatalog) add(v *lfs.Volume, exported bool) {
	cat.mu.Lock()
	defer cat.mu.Unlock()
	cat.mu.order = append(cat.mu.order, v.Name())
	cat.mu.vols[v.Name()] = servedVolume{vol: v, exported: exported}
}

// volumes returns the open volumes in the order named.
func (cat *volumeCatalog) volumes() []*lfs.Volume {
	cat.mu.Lock()
	defer cat.mu.Unlock()
	vols := make([]*lfs.Volume, 0, len(cat.mu.order))
	for _, name := range cat.mu.order {
		vols = append(vols, cat.mu.vols[name].vol)
	}
	return vols
}

// volume returns the open volume name.
func (cat *volumeCatalog) volume(name string) (servedVolume, bool) {
	cat.mu.Lock()
	defer cat.mu.Unlock()
	sv, ok := cat.mu.vols[name]
	return sv, ok
}

// setNamed sets the exports named on the command line.
func (cat *volumeCatalog) setNamed(names []string) {
	cat.mu.Lock()
	defer cat.mu.Unlock()
	cat.mu.named = slices.Clone(names)
}

// Names implements nbdserver.Catalog: the exports named on the command line,
// or every volume followed by its snapshots in the order they were taken.
func (cat *volumeCatalog) Names() []string {
	cat.mu.Lock()
	if !cat.all {
		defer cat.mu.Unlock()
		return slices.Clone(cat.mu.named)
	}
	order := slices.Clone(cat.mu.order)
	vols := make(map[string]servedVolume, len(order))
	for _, name := range order {
		vols[name] = cat.mu.vols[name]
	}
	cat.mu.Unlock()
	var names []string
	for _, name := range order {
		names = append(names, name)
		for _, s := range vols[name].vol.SnapshotNames() {
			names = append(names, name+"@"+s)
		}
	}
	return names
}

// Lookup implements nbdserver.Catalog.
func (cat *volumeCatalog) Lookup(name string) (nbdserver.Export, nbdserver.ExportInfo, error) {
	unknown := func() (nbdserver.Export, nbdserver.ExportInfo, error) {
		return nil, nbdserver.ExportInfo{}, fmt.Errorf("%w: %q", nbdserver.ErrUnknownExport, name)
	}
	volName, snap, isSnap := name, "", false
	if strings.Contains(name, "@") {
		var err error
		if volName, snap, err = lfs.ParseSnapshotRef(name); err != nil {
			return unknown()
		}
		isSnap = true
	}
	cat.mu.Lock()
	sv, ok := cat.mu.vols[volName]
	wanted := ok && (cat.all || slices.Contains(cat.mu.named, name))
	view := cat.mu.views[name]
	closed := cat.mu.closed
	cat.mu.Unlock()
	if !wanted || closed {
		return unknown()
	}
	info := nbdserver.ExportInfo{PreferredBlockSize: uint32(sv.vol.BlockSize())}
	if !isSnap {
		info.Description = "hlfs volume " + name
		return sv.vol, info, nil
	}
	info.ReadOnly = true
	info.Description = "hlfs snapshot " + name
	if view != nil {
		return view, info, nil
	}
	view, err := cat.openView(sv.vol, name, snap)
	if errors.Is(err, lfs.ErrSnapshotNotFound) {
		return unknown()
	}
	if err != nil {
		return nil, nbdserver.ExportInfo{}, err
	}
	return view, info, nil
}

// openView returns the open view of snapshot snap of v, export name, opening
// it when no one has.
func (cat *volumeCatalog) openView(v *lfs.Volume, name, snap string) (*lfs.SnapshotView, error) {
	view, err := v.SnapshotView(snap)
	if err != nil {
		return nil, err
	}
	cat.mu.Lock()
	defer cat.mu.Unlock()
	if cat.mu.closed {
		view.Close()
		return nil, fmt.Errorf("%w: %q: shutting down", nbdserver.ErrUnknownExport, name)
	}
	if other := cat.mu.views[name]; other != nil {
		view.Close() // another client opened it meanwhile
		return other, nil
	}
	cat.mu.views[name] = view
	return view, nil
}

// closeViews closes every snapshot view; Lookup finds no more snapshots.
func (cat *volumeCatalog) closeViews() {
	cat.mu.Lock()
	defer cat.mu.Unlock()
	cat.mu.closed = true
	for name, view := range cat.mu.views {
		if err := view.Close(); err != nil {
			cat.logger.Warn("closing a snapshot view failed", "snapshot", name, "err", err)
		}
		delete(cat.mu.views, name)
	}
}

// CreateSnapshot implements admin.Handler.
func (cat *volumeCatalog) CreateSnapshot(vol, snap string) error {
	sv, err := cat.adminVolume(vol, snap)
	if err != nil {
		return err
	}
	if err := sv.vol.CreateSnapshot(snap); err != nil {
		return cat.adminError(vol, snap, err)
	}
	cat.logger.Info("created snapshot " + vol + "@" + snap)
	return nil
}

// DeleteSnapshot implements admin.Handler. The snapshot's export goes with
// it: clients still reading it get errors.
func (cat *volumeCatalog) DeleteSnapshot(vol, snap string) error {
	sv, err := cat.adminVolume(vol, snap)
	if err != nil {
		return err
	}
	if err := sv.vol.DeleteSnapshot(snap); err != nil {
		return cat.adminError(vol, snap, err)
	}
	name := vol + "@" + snap
	cat.mu.Lock()
	view := cat.mu.views[name]
	delete(cat.mu.views, name)
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
	if _, err := volumeArg(vol); err != nil {
		return lfs.GCStats{}, errors.New(cliutil.Message(err))
	}
	sv, ok := cat.volume(vol)
	if !ok {
		return lfs.GCStats{}, fmt.Errorf("%s is not open in this server (pid %d)", vol, os.Getpid())
	}
	stats, err := sv.vol.GC(lfs.GCOptions{Rate: opts.Rate, MaxUtilization: opts.MaxUtilization, Defrag: opts.Defrag})
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
	if _, err := volumeArg(vol); err != nil {
		return lfs.ScrubReport{}, errors.New(cliutil.Message(err))
	}
	sv, ok := cat.volume(vol)
	if !ok {
		return lfs.ScrubReport{}, fmt.Errorf("%s is not open in this server (pid %d)", vol, os.Getpid())
	}
	rep, err := sv.vol.Scrub(lfs.ScrubOptions{Rate: opts.Rate})
	if err != nil {
		cat.logger.Error("scrub failed", "volume", vol, "err", err)
		return lfs.ScrubReport{}, fmt.Errorf("scrub of %s failed: %s", vol, cliutil.Message(cat.c.volumeError(vol, err)))
	}
	cat.logger.Info("scrubbed "+vol+" on request", "records", rep.Records, "bytes_verified", rep.BytesVerified, "damaged_ranges", len(rep.Damaged))
	return rep, nil
}

// adminVolume checks an admin request's names and returns its volume.
func (cat *volumeCatalog) adminVolume(vol, snap string) (servedVolume, error) {
	if _, _, err := snapshotArg(vol + "@" + snap); err != nil {
		return servedVolume{}, errors.New(cliutil.Message(err))
	}
	sv, ok := cat.volume(vol)
	if !ok {
		return servedVolume{}, fmt.Errorf("%s is not open in this server (pid %d)", vol, os.Getpid())
	}
	return sv, nil
}

// adminError words err for the admin client, which prints it as is.
func (cat *volumeCatalog) adminError(vol, snap string, err error) error {
	return errors.New(cliutil.Message(cat.c.snapshotError(vol, snap, err)))
}
