package lfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
)

// Roaming is one process's hold on a volume that moves between hosts
// (docs/design.md, "Roaming: standby exports and hand-off"). It is in one of
// two roles:
//
//   - owner: it holds the owner lock and serves through a writable Volume;
//   - standby: another process owns the volume; reads are served from a
//     read-only view of the owner's durable state as of the view's open (or
//     last Refresh), which may be stale.
//
// The first write, zero or flush on a standby asks the owner to hand over
// (RoamOptions.Ask, the network channel serve provides), waits for the
// owner lock (TakeOver), and then runs on the new owner Volume. HandOff,
// called on the owner when another process asks, makes everything durable,
// writes a checkpoint, releases the owner lock and turns this Roaming into
// a standby. Ownership can move back the same way any number of times.
//
// Roaming has the method set of nbdserver.Export and nbdserver.BitmapExport,
// so serve can export it as it exports a Volume. All methods are safe for
// concurrent use.
type Roaming struct {
	st   objstore.Store
	name string
	opts Options
	ro   RoamOptions

	// role serializes role changes (TakeOver, HandOff, Refresh, Close),
	// which do store I/O under it.
	role sync.Mutex
	// mu is held shared by every call on cur for the whole call (store I/O
	// happens under the shared hold), and exclusively while cur is replaced
	// or closed, so no call runs on a Volume being closed.
	mu struct {
		sync.RWMutex
		cur    *Volume // the owner Volume, or the standby's read-only view
		owner  bool
		closed bool
		// probe is where the log ended in the store just before the
		// standby's view was opened: the view holds at least that much.
		probe logProbe
	}
}

// RoamOptions configure a Roaming.
type RoamOptions struct {
	// Ask asks owner, the process holding the volume, to hand it over
	// (to call HandOff) and returns when it answered. An error (owner
	// unreachable, refused) is not final: TakeOver then waits for the
	// owner's lease to run out, as an Open after a crash does. Nil: writes,
	// zeroes and flushes on a standby fail with ErrStandby.
	Ask func(ctx context.Context, owner OwnerRecord) error
	// OnRole, when not nil, is called after every role change with the
	// Volume now serving and whether it is the owner's (serve starts the
	// cleaner on an owner Volume and points its metrics at it). It runs
	// with no lock of the Roaming held and must not call HandOff or
	// TakeOver.
	OnRole func(v *Volume, owner bool)
	// TakeOverTimeout bounds how long a write on a standby waits to become
	// the owner; 0 means two leases (Options.Lease), enough for a dead
	// owner's lease to run out.
	TakeOverTimeout time.Duration
	// StaleReads serves a standby's reads from its view as it is. By
	// default each read first checks whether the owner's log grew since
	// the view was opened (logProbe.grown: a few object opens, no reads)
	// and, if it did, opens a new view first: a migrated guest's first
	// reads on the destination must see what the source wrote last.
	StaleReads bool
}

// OpenRoaming opens the volume as its owner when no other live process
// holds it, and as a standby when one does (an *InUseError from Open).
// opts.ReadOnly must be false.
func OpenRoaming(st objstore.Store, name string, opts Options, ro RoamOptions) (*Roaming, error) {
	if opts.ReadOnly {
		return nil, errors.New("lfs: OpenRoaming: Options.ReadOnly is set")
	}
	opts = opts.withLogger()
	v, err := Open(st, name, opts)
	if errors.As(err, new(*InUseError)) {
		return OpenStandby(st, name, opts, ro)
	}
	if err != nil {
		return nil, err
	}
	return newRoaming(st, name, opts, ro, v, true), nil
}

// OpenStandby opens the volume as a standby: a read-only view of the
// durable state (with a read lease, so the owner's cleaner keeps the
// segments it reads), owned by whoever owns it, if anyone.
func OpenStandby(st objstore.Store, name string, opts Options, ro RoamOptions) (*Roaming, error) {
	opts = opts.withLogger()
	view, probe, err := openView(st, name, opts)
	if err != nil {
		return nil, err
	}
	r := newRoaming(st, name, opts, ro, view, false)
	r.mu.probe = probe
	return r, nil
}

func newRoaming(st objstore.Store, name string, opts Options, ro RoamOptions, v *Volume, owner bool) *Roaming {
	r := &Roaming{st: st, name: name, opts: opts, ro: ro}
	r.mu.cur, r.mu.owner = v, owner
	r.notify(v, owner)
	return r
}

func (o Options) withLogger() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// openView opens a read-only view of the volume, and returns with it where
// the log ended in the store just before: the view holds at least that.
func openView(st objstore.Store, name string, opts Options) (*Volume, logProbe, error) {
	probe, err := probeLog(st, name)
	if err != nil {
		return nil, logProbe{}, err
	}
	opts.ReadOnly = true
	v, err := Open(st, name, opts)
	return v, probe, err
}

func (r *Roaming) notify(v *Volume, owner bool) {
	if r.ro.OnRole != nil {
		r.ro.OnRole(v, owner)
	}
}

// Owner reports whether this process owns the volume now.
func (r *Roaming) Owner() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.mu.owner
}

// Current returns the Volume serving now: the owner's, or the standby's
// read-only view. It is replaced (and the old one closed) at every role
// change and Refresh; hold it only briefly (OnRole says when it changes).
func (r *Roaming) Current() *Volume {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.mu.cur
}

// Name returns the volume's name.
func (r *Roaming) Name() string { return r.name }

// Size returns the volume size in bytes (as of the open; a resize needs the
// volume unserved).
func (r *Roaming) Size() int64 { return r.Current().Size() }

// BlockSize returns the volume's block size.
func (r *Roaming) BlockSize() int { return r.Current().BlockSize() }

// read runs fn on the serving Volume, whatever its role; a standby's view
// is renewed first if the owner's log grew (unless StaleReads).
func (r *Roaming) read(fn func(v *Volume) error) error {
	r.freshen()
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.mu.closed {
		return ErrClosed
	}
	return fn(r.mu.cur)
}

// ReadAt reads through the serving Volume; on a standby, the owner's durable
// state as of the view's open or last Refresh.
func (r *Roaming) ReadAt(p []byte, off int64) error {
	return r.read(func(v *Volume) error { return v.ReadAt(p, off) })
}

// Allocation reports holes and data as Volume.Allocation does.
func (r *Roaming) Allocation(off, length int64, fn func(length int64, hole bool) error) error {
	return r.read(func(v *Volume) error { return v.Allocation(off, length, fn) })
}

// DirtyBitmaps names the serving Volume's dirty bitmaps (Volume.DirtyBitmaps).
func (r *Roaming) DirtyBitmaps() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.mu.closed {
		return nil
	}
	return r.mu.cur.DirtyBitmaps()
}

// freshen opens a new standby view when the owner's log grew since the
// current one was opened. A probe that fails leaves the view as it is
// (the read then says whether the store works).
func (r *Roaming) freshen() {
	if r.ro.StaleReads {
		return
	}
	r.mu.RLock()
	standby, probe := !r.mu.owner && !r.mu.closed, r.mu.probe
	r.mu.RUnlock()
	if !standby {
		return
	}
	grown, err := probe.grown(r.st, r.name)
	if err != nil {
		r.opts.Logger.Warn("cannot check whether the owner wrote since the standby view opened; reading it as it is", "volume", r.name, "err", err)
		return
	}
	if !grown {
		return
	}
	r.role.Lock()
	defer r.role.Unlock()
	r.mu.RLock()
	current := !r.mu.owner && !r.mu.closed && r.mu.probe == probe
	r.mu.RUnlock()
	if current { // nobody refreshed it meanwhile
		if err := r.refreshLockedRole(); err != nil {
			r.opts.Logger.Warn("renewing the standby view failed; reading the old one", "volume", r.name, "err", err)
		}
	}
}

// Dirty reports changed runs as Volume.Dirty does.
func (r *Roaming) Dirty(name string, off, length int64, fn func(length int64, dirty bool) error) error {
	return r.read(func(v *Volume) error { return v.Dirty(name, off, length, fn) })
}

// write runs fn on the owner Volume, taking ownership first on a standby.
func (r *Roaming) write(fn func(v *Volume) error) error {
	for attempt := 0; ; attempt++ {
		r.mu.RLock()
		if r.mu.closed {
			r.mu.RUnlock()
			return ErrClosed
		}
		if r.mu.owner {
			err := fn(r.mu.cur)
			r.mu.RUnlock()
			return err
		}
		r.mu.RUnlock()
		if r.ro.Ask == nil || attempt > 0 {
			// Without a channel a standby never writes; a second round means
			// ownership moved on again at once: the client retries.
			return fmt.Errorf("%w: %s", ErrStandby, r.name)
		}
		ctx, cancel := context.WithTimeout(context.Background(), r.takeOverTimeout())
		err := r.TakeOver(ctx)
		cancel()
		if err != nil {
			return err
		}
	}
}

func (r *Roaming) takeOverTimeout() time.Duration {
	if r.ro.TakeOverTimeout > 0 {
		return r.ro.TakeOverTimeout
	}
	lease := r.opts.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	return 2 * lease
}

// WriteAt writes as Volume.WriteAt does; on a standby it takes ownership
// first.
func (r *Roaming) WriteAt(p []byte, off int64, fua bool) error {
	return r.write(func(v *Volume) error { return v.WriteAt(p, off, fua) })
}

// WriteAtKeep writes as Volume.WriteAtKeep does; on a standby it takes
// ownership first.
func (r *Roaming) WriteAtKeep(p []byte, off int64, fua bool, release func()) error {
	k := newKeptPayload(release)
	defer k.drop()
	return r.write(func(v *Volume) error { return v.writeAt(p, off, fua, k) })
}

// Zero zeroes or trims as Volume.Zero does; on a standby it takes ownership
// first.
func (r *Roaming) Zero(off, length int64, punch, fua bool) error {
	return r.write(func(v *Volume) error { return v.Zero(off, length, punch, fua) })
}

// Flush makes completed writes durable as Volume.Flush does. On a standby
// there is nothing to make durable: every write this Roaming completed
// while it owned the volume was made durable by the hand-off, so the flush
// succeeds without taking ownership (a source guest's last flush after a
// migration does not pull the volume back).
func (r *Roaming) Flush() error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	switch {
	case r.mu.closed:
		return ErrClosed
	case !r.mu.owner:
		return nil
	}
	return r.mu.cur.Flush()
}

// TakeOver makes this Roaming the owner: it asks the owner to hand over
// (RoamOptions.Ask) and opens the volume for writing as soon as the owner
// lock is free, or the owner's lease ran out (a dead or unreachable owner);
// the open takes the next epoch, so a stale owner's log writer is fenced,
// and replays the log after the newest checkpoint. Reads go on from the
// standby view meanwhile. It fails when ctx ends first; on an owner it does
// nothing.
func (r *Roaming) TakeOver(ctx context.Context) error {
	r.role.Lock()
	defer r.role.Unlock()
	if r.Owner() {
		return nil
	}
	var asked uint64 // epoch last asked, so a new owner is asked again
	var askedAt time.Time
	pause := 2 * time.Millisecond
	for {
		v, err := Open(r.st, r.name, r.opts)
		if err == nil {
			r.swap(v, true, logProbe{})
			return nil
		}
		var inUse *InUseError
		if !errors.As(err, &inUse) {
			return err
		}
		if r.ro.Ask != nil && (inUse.Owner.Epoch != asked || time.Since(askedAt) > time.Second) {
			asked, askedAt = inUse.Owner.Epoch, time.Now()
			if aerr := r.ro.Ask(ctx, inUse.Owner); aerr != nil {
				r.opts.Logger.Warn("asking the owner to hand over failed; waiting for its lease",
					"volume", r.name, "owner", inUse.Owner.Host, "epoch", inUse.Owner.Epoch, "err", aerr)
			} else {
				continue // it answered: the lock should be free now
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lfs: take over %s: %w (last: %v)", r.name, ctx.Err(), err)
		case <-time.After(pause):
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}

// swap installs v as the serving Volume in role owner (a standby's view with
// its probe) and closes the one it replaces, once no call runs on it. role
// is held.
func (r *Roaming) swap(v *Volume, owner bool, probe logProbe) {
	r.mu.Lock()
	old := r.mu.cur
	r.mu.cur, r.mu.owner, r.mu.probe = v, owner, probe
	r.mu.Unlock()
	if old != nil && old != v {
		_ = old.Close() // a read-only view, or an owner already closed
	}
	r.notify(v, owner)
}

// HandOff gives ownership away: with every call on the owner Volume
// finished and new ones held back, it makes every write durable, writes a
// checkpoint and releases the owner lock (Volume.Close), then serves as a
// standby from a view of what it just made durable. Writes that were in
// flight either completed before (and are durable now) or run after, on the
// standby, and then ask for ownership back. On a standby it does nothing.
//
// When the owner Volume cannot be closed cleanly (the store fails), the
// error is returned and the owner lock is kept but no longer renewed: the
// Volume is closed, so every later call on this Roaming fails (nothing is
// acknowledged that was not made durable), and another host takes the
// volume over once the lease has run out.
func (r *Roaming) HandOff() error { return r.handOffEpoch(0) }

// handOffEpoch is HandOff of the ownership of epoch (0: whichever this
// process holds): a request for an earlier ownership hands nothing off.
func (r *Roaming) handOffEpoch(epoch uint64) error {
	r.role.Lock()
	defer r.role.Unlock()
	r.mu.Lock()
	if !r.mu.owner || r.mu.closed || (epoch != 0 && r.mu.cur.owner.epoch != epoch) {
		r.mu.Unlock()
		return nil
	}
	err := r.mu.cur.close(true)
	if err != nil {
		r.mu.Unlock()
		return fmt.Errorf("lfs: hand off %s: %w", r.name, err)
	}
	// Reads wait (rather than fail) while the view opens: it reads the
	// checkpoint just written and little else.
	r.mu.owner = false
	view, probe, verr := openView(r.st, r.name, r.opts)
	if verr == nil {
		r.mu.cur, r.mu.probe = view, probe
	}
	r.mu.Unlock()
	if verr != nil {
		// The hand-off is done; reads fail (ErrClosed) until a Refresh
		// opens a view.
		r.opts.Logger.Warn("opening the standby view after a hand-off failed", "volume", r.name, "err", verr)
		return nil
	}
	r.notify(view, false)
	return nil
}

// Refresh replaces a standby's view by one of the owner's durable state
// now. On an owner it does nothing.
func (r *Roaming) Refresh() error {
	r.role.Lock()
	defer r.role.Unlock()
	return r.refreshLockedRole()
}

// refreshLockedRole is Refresh with role held.
func (r *Roaming) refreshLockedRole() error {
	if r.Owner() {
		return nil
	}
	view, probe, err := openView(r.st, r.name, r.opts)
	if err != nil {
		return err
	}
	r.swap(view, false, probe)
	return nil
}

// Close closes the serving Volume: an owner's as Volume.Close does
// (durable, checkpointed, lock released), a standby's view. Later calls
// return ErrClosed.
func (r *Roaming) Close() error {
	r.role.Lock()
	defer r.role.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed {
		return ErrClosed
	}
	r.mu.closed = true
	err := r.mu.cur.Close()
	if errors.Is(err, ErrClosed) && !r.mu.owner {
		err = nil // a failed view open left the closed owner in place
	}
	return err
}

// logProbe is where a volume's log ended in the store at some moment: its
// newest segment object and that object's size. Every change of a volume
// (write, trim, snapshot, cleaner copy) appends to the log, so a log that
// has not grown past a probe holds nothing newer.
type logProbe struct {
	seq     uint64 // 0: no segment yet
	attempt int
	size    int64
}

// probeLog lists the volume's segments and returns where the log ends.
func probeLog(st objstore.Store, vol string) (logProbe, error) {
	seqs, attempts, err := segmentAttempts(st, vol)
	if err != nil || len(seqs) == 0 {
		return logProbe{}, err
	}
	p := logProbe{seq: seqs[len(seqs)-1]}
	p.attempt = slices.Max(attempts[p.seq])
	p.size, err = objectSize(st, segObjName(vol, p.seq, p.attempt))
	if errors.Is(err, objstore.ErrNotExist) {
		return probeLog(st, vol) // replaced meanwhile: look again
	}
	return p, err
}

// grown reports whether the log grew past p, with a few object opens and
// no listing (a standby checks before every read): a longer object, a
// rewritten attempt of it, or the next segment (its first or second
// attempt: the first is removed when it failed before holding anything
// flushed).
func (p logProbe) grown(st objstore.Store, vol string) (bool, error) {
	for _, name := range []string{segObjName(vol, p.seq+1, 0), segObjName(vol, p.seq+1, 1)} {
		if _, err := objectSize(st, name); err == nil {
			return true, nil
		} else if !errors.Is(err, objstore.ErrNotExist) {
			return false, err
		}
	}
	if p.seq == 0 {
		return false, nil
	}
	if _, err := objectSize(st, segObjName(vol, p.seq, p.attempt+1)); err == nil {
		return true, nil
	} else if !errors.Is(err, objstore.ErrNotExist) {
		return false, err
	}
	size, err := objectSize(st, segObjName(vol, p.seq, p.attempt))
	if errors.Is(err, objstore.ErrNotExist) {
		return true, nil // replaced by a later attempt
	}
	return err == nil && size > p.size, err
}

// handOffCheckpoint reports whether a hand-off should write a checkpoint:
// when the log written since the last one, which the next owner would
// replay, is larger than the checkpoint would be (32 bytes an extent of the
// live map). Either way the next owner reads the newest checkpoint, so
// writing one pays only when it saves more replay than it costs.
func (v *Volume) handOffCheckpoint() bool {
	v.ckpt.Lock()
	tail := v.lw.bytesWritten() - v.ckpt.at.Load()
	if v.ckpt.count == 0 {
		tail += v.stats.replayed // none since open: the tail open replayed is still there
	}
	v.ckpt.Unlock()
	v.mu.RLock()
	mapBytes := int64(v.mu.m.Len()) * 32
	v.mu.RUnlock()
	return tail > mapBytes
}
