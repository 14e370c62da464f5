package lfs

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hlfs/hlfs/internal/blockmap"
	"github.com/hlfs/hlfs/internal/membudget"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
	"github.com/hlfs/hlfs/snapshot"
)

// Options tune Open.
type Options struct {
	// ReadOnly opens without taking ownership: no recovery repairs, and
	// writes fail with ErrReadOnly. The view is the log as the store shows it
	// at open.
	ReadOnly bool
	// Logger receives recovery warnings and background errors; nil discards.
	Logger *slog.Logger
	// CheckpointInterval is the number of log bytes after which a checkpoint
	// is written in the background; 0 means 1 GiB, negative disables.
	CheckpointInterval int64
	// AdminSocket is recorded in the owner lock for other commands to find.
	AdminSocket string
	// NBD are the URIs this process serves the volume on, recorded in the
	// owner lock (OwnerRecord.NBD) for "hlfs attach" to find.
	NBD []string
	// StoreRetry is how long a flush keeps retrying a store failure marked
	// objstore.ErrTransient before it reports it: 0 means 20 s, negative
	// means no retry.
	StoreRetry time.Duration
	// Lease is how long the owner lock's renewal holds (0: DefaultLease). The
	// lock is renewed every Lease/3 while open; another host may take the
	// volume over once a lease ran out, and this process stops acknowledging
	// flushes once it could not renew for 2/3 of a lease.
	Lease time.Duration
	// Budget, when not nil, bounds the log data held in memory by this and
	// every other volume opened with it: appends wait for room, and the
	// budget seals the largest or oldest in-memory segments early to make
	// it. nil: no bound (each volume holds up to three segments).
	Budget *membudget.Budget
	// SegmentPool is how many objects of deleted segments the volume keeps
	// at least to write new segments over, on stores that can (the local
	// store; see segment_pool.go): 0 means 8, negative means none. Under a
	// write load the pool holds up to 8 times as many (poolDemandFactor).
	SegmentPool int

	// beforeClose, when not nil, runs at the start of Close while the
	// volume is still whole: tests check the invariants there (Check).
	beforeClose func(v *Volume)
}

const (
	defaultCheckpointInterval = 1 << 30
	defaultStoreRetry         = 20 * time.Second
)

// Volume is an open volume. All methods are safe for concurrent use.
//
// Locks and gates, in lock order: a goroutine holding one takes only those
// further down the list (docs/design.md §7).
//
//	gcMu        one cleaning run at a time; guards gc            I/O: yes
//	snapMu      one snapshot operation at a time                 I/O: yes
//	ckpt        one checkpoint at a time; the checkpoint state   I/O: yes
//	snapCache   snapshot maps loaded for the cleaner and books   I/O: yes
//	readGate    shared by reads, exclusive while deleting        I/O: yes
//	lw.ioMu     the log's store I/O, in log order                I/O: yes
//	lw.mu       in-memory segments; appends apply under it       I/O: never
//	mu          the maps, the snapshot tree, the books, closed   I/O: never
//	readers.mu, attemptMap.mu, ownership.mu, SnapshotView.mu     leaves
//
// A function that must be called with a lock held says so in its name:
// ...LockedMu (mu of its receiver), ...LockedIO (lw.ioMu), ...LockedCkpt
// (ckpt). Functions of cleaner.go below GC and the background loop run
// with gcMu held. Other types reach lw.mu only through logWriter.atCut.
type Volume struct {
	st   objstore.Store
	name string
	sb   superblock
	lin  snapshot.Lineage
	opts Options
	log  *slog.Logger

	owner   *ownership // nil when read-only
	reader  *readLease // read-only only: keeps the owner's cleaner from deleting segments
	lw      *logWriter // nil when read-only
	readers *segmentReaders

	// mu guards the maps, the snapshot tree and the books. No I/O happens
	// under it.
	mu struct {
		sync.RWMutex
		mapState
		closed bool
	}
	// snapMu serializes snapshot operations (check, append, apply).
	snapMu sync.Mutex

	// ckpt serializes checkpoints (it is held while one is written, which
	// does store I/O) and guards the checkpoint state.
	ckpt struct {
		sync.Mutex
		last      segment.Pos                // position of the newest checkpoint
		lastSnaps map[snapshot.ObjectID]bool // snapshot map objects it names
		count     int                        // checkpoints written since open
		// at is the log bytes written when the last one started; set under
		// the lock, read without it on the write path (maybeCheckpoint), which
		// must not wait for a checkpoint in progress.
		at atomic.Int64
	}
	ckptKick chan struct{}
	snapKick chan struct{} // a snapshot waits to be materialized
	// stopBackground is closed by Close and Abandon: it stops every
	// background loop (checkpoints, lease renewal, cleaner, read leases).
	stopBackground chan struct{}
	backgroundWG   sync.WaitGroup

	stats recoveryStats
	// indexGen counts checkpoints written and segments deleted: the store
	// index describes the volume again when it moved (index_writer.go).
	indexGen atomic.Int64
	// checksumErrors counts reads that failed a checksum (damaged).
	checksumErrors atomic.Int64
	// metrics are counters and estimates for monitoring (metrics.go).
	metrics volumeMetrics
	// sums caches block checksum tables of records read (readBlocks).
	sums sumCache

	// gcMu serializes cleaning; it guards gc.
	gcMu sync.Mutex
	gc   cleanerState
	// readGate is held shared by every read from looking up the map to the
	// last byte read, and exclusively by the cleaner while it deletes
	// segments: a read never finds a segment gone that the map it looked
	// at named.
	readGate sync.RWMutex
	// snapCache holds snapshot maps read from their objects for the
	// cleaner and the books (loadSnapshotMaps).
	snapCache struct {
		sync.Mutex
		maps map[snapshot.ObjectID]*blockmap.Map
	}
}

type recoveryStats struct {
	records  int
	replayed int64
}

// Create makes a new, empty volume.
func Create(st objstore.Store, name string, cfg Config) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	if _, err := readSuperblock(st, name); err == nil {
		return fmt.Errorf("%w: %s", ErrExists, name)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	if err := checkNoLeftovers(st, name); err != nil {
		return err
	}
	sb := superblock{uid: newUID(), size: cfg.Size, blockSize: cfg.BlockSize,
		segmentSize: cfg.SegmentSize, compress: cfg.Compress, created: nowUTC(), replication: cfg.Replication}
	applyReplication(st, name, sb)
	if err := createSuperblock(st, name, sb); err != nil {
		return err
	}
	indexCreated(st, name)
	return nil
}

// Open opens a volume, taking ownership unless opts.ReadOnly, and rebuilds
// its block map from the newest checkpoint and the log after it.
func Open(st objstore.Store, name string, opts Options) (*Volume, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	sb, err := readSuperblock(st, name)
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = defaultCheckpointInterval
	}
	lin, err := readLineage(st, name)
	if err != nil {
		return nil, err
	}
	if err := checkJournal(st, name); err != nil {
		return nil, err
	}
	applyReplication(st, name, sb)
	v := &Volume{st: st, name: name, sb: sb, lin: lin, opts: opts, log: opts.Logger.With("volume", name),
		gc: cleanerState{sizes: make(map[uint64]int64), pending: make(map[uint64]pendingDelete), poolIdle: poolIdle,
			pace: []paceSample{{at: time.Now()}}}}
	var epoch uint64
	if !opts.ReadOnly {
		if v.owner, err = acquireOwner(st, name, opts.AdminSocket, opts.NBD, opts.Lease); err != nil {
			return nil, err
		}
		epoch = v.owner.epoch
	} else if v.reader, err = takeReadLease(st, name); err != nil {
		// Reading goes on; a cleaning owner may delete a segment this
		// view's maps name, and a read of it would then fail.
		v.log.Warn("cannot take a read lease; reads may fail if the volume is being cleaned", "err", err)
	}
	r, err := replay(st, volMeta{name, sb, lin}, true, v.log, nil)
	if err == nil && !opts.ReadOnly {
		err = v.repairTail(r)
	}
	if err != nil {
		v.releaseOwner()
		v.reader.release()
		return nil, err
	}
	v.mu.m, v.mu.snaps, v.mu.books = r.m, r.snaps, r.books
	v.ckpt.last, v.ckpt.lastSnaps = r.ckpt, r.ckptSnaps
	v.stats = recoveryStats{records: r.records, replayed: r.replayedBytes}
	attempts := newAttemptMap()
	for seq, a := range r.attempts {
		attempts.set(seq, a)
	}
	v.readers = newSegmentReaders(st, lin, attempts)
	if !opts.ReadOnly {
		retry := opts.StoreRetry
		if retry == 0 {
			retry = defaultStoreRetry
		}
		v.lw = newLogWriter(st, name, sb.uid, epoch, sb.segmentSize, r.end, attempts, retry, opts.Budget, opts.segmentPool() > 0)
		v.ckptKick, v.snapKick, v.stopBackground = make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{})
		v.backgroundWG.Add(1)
		go v.checkpointLoop()
		v.every(time.Duration(v.owner.rec.LeaseSeconds*float64(time.Second))/3, nil, v.renewOwner)
		if x := indexFor(st); x != nil {
			x.opened(v)
		}
	}
	return v, nil
}

// replicationSetter is implemented by stores that replicate objects (HDFS).
type replicationSetter interface {
	SetReplication(vol string, n int)
}

// applyReplication tells a replicating store the volume's factor.
func applyReplication(st objstore.Store, vol string, sb superblock) {
	if r, ok := st.(replicationSetter); ok && sb.replication > 0 {
		r.SetReplication(vol, sb.replication)
	}
}

// repairTail prepares the log for appending after a crash: segments after
// the end of the log are moved to VOL/lost+found/ (recovery never deletes
// what it did not write: they may be a crash's unflushed writes, or data
// cut off by damage; fsck reports them until an operator clears them; only
// objects that hold no record but their header are removed), and
// the last segment's bytes are made durable before a new segment records
// where it ended.
func (v *Volume) repairTail(r replayed) error {
	stamp := time.Now().UTC().UnixNano()
	for k := len(r.cut) - 1; k >= 0; k-- { // newest first: what remains is a prefix
		for _, a := range r.allAttempts[r.cut[k]] {
			from := segObjName(v.name, r.cut[k], a)
			if size, err := objectSize(v.st, from); err == nil && size <= segment.SegmentHeaderLen || recycledUnwritten(v.st, from, r.cut[k]) {
				// No record but its header, or a recycled file whose own
				// header never reached the disk: nothing to keep.
				if err := v.st.Remove(from); err != nil && !errors.Is(err, objstore.ErrNotExist) {
					return err
				}
				continue
			}
			to := path.Join(lostFoundDir(v.name), fmt.Sprintf("%s-%016x", path.Base(from), stamp))
			if err := v.st.Rename(from, to); err != nil && !errors.Is(err, objstore.ErrNotExist) {
				return fmt.Errorf("lfs: set aside %s: %w", from, err)
			}
			v.log.Warn("set aside a segment after the end of the log", "segment", from, "to", to)
		}
	}
	// Attempts that lost to a later one: the winner is made durable first.
	for _, name := range r.discardObjects {
		var seq uint64
		if _, err := fmt.Sscanf(path.Base(name), "%016x", &seq); err != nil {
			continue
		}
		if err := v.st.Persist(segObjName(v.name, seq, r.attempts[seq])); err != nil {
			return err
		}
		if err := v.st.Remove(name); err != nil && !errors.Is(err, objstore.ErrNotExist) {
			return err
		}
	}
	if r.end.Seq > 0 {
		return v.st.Persist(segObjName(v.name, r.end.Seq, r.attempts[r.end.Seq]))
	}
	return nil
}

func (v *Volume) releaseOwner() {
	v.reader.release()
	v.reader = nil
	if v.owner != nil {
		if err := v.owner.release(); err != nil {
			v.log.Warn("releasing the owner lock failed", "err", err)
		}
	}
}

// Name returns the volume's name.
func (v *Volume) Name() string { return v.name }

// Size returns the volume size in bytes.
func (v *Volume) Size() int64 { return v.sb.size }

// BlockSize returns the volume's block size.
func (v *Volume) BlockSize() int { return v.sb.blockSize }

// Close makes every write durable, writes a checkpoint and releases
// ownership. Later calls return ErrClosed.
func (v *Volume) Close() error { return v.close(false) }

// close is Close; for a hand-off (roam.go) the checkpoint is written only
// when it pays (handOffCheckpoint).
func (v *Volume) close(handOff bool) error {
	if v.opts.beforeClose != nil && v.checkOpen(false) == nil {
		v.opts.beforeClose(v)
	}
	err := v.closeLog(handOff)
	if err == nil {
		v.releaseOwner()
		if x := indexFor(v.st); x != nil && v.owner != nil {
			x.closed(v)
		}
	} else if !errors.Is(err, ErrClosed) {
		v.log.Error("closing left unflushed state; the owner lock stays until this process exits", "err", err)
	}
	return err
}

// closeLog stops I/O, makes everything durable and writes a checkpoint
// (for a hand-off, only when handOffCheckpoint says it pays), keeping
// ownership.
func (v *Volume) closeLog(handOff bool) error {
	v.mu.Lock()
	if v.mu.closed {
		v.mu.Unlock()
		return ErrClosed
	}
	v.mu.closed = true
	v.mu.Unlock()
	var err error
	if v.lw != nil {
		close(v.stopBackground)
		v.lw.stopWaiting()
		v.backgroundWG.Wait()
		if !handOff || v.handOffCheckpoint() {
			err = v.checkpoint()
		}
		if cerr := v.lw.close(); err == nil {
			err = cerr
		}
		if err == nil {
			v.emptyPool()
		}
	}
	v.readers.close()
	return err
}

// atLogCut runs fn at a consistent cut of the log and the maps
// (logWriter.atCut); a read-only volume's maps do not change with the log,
// so fn then just runs (with a zero logCut).
func (v *Volume) atLogCut(fn func(c logCut)) {
	if v.lw == nil {
		fn(logCut{})
		return
	}
	v.lw.atCut(fn)
}

func (v *Volume) checkOpen(write bool) error {
	v.mu.RLock()
	closed := v.mu.closed
	v.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if write && v.lw == nil {
		return ErrReadOnly
	}
	return nil
}

func (v *Volume) checkRange(off, length int64) error {
	if off < 0 || length < 0 || off > v.sb.size || length > v.sb.size-off {
		return fmt.Errorf("%w: %d bytes at %d, volume size %d", ErrOutOfRange, length, off, v.sb.size)
	}
	return nil
}

// Abandon stops using the volume at once, as a crash would: nothing more is
// written or made durable (unflushed writes are lost), but the owner lock is
// released so the volume can be opened again right away. For crash tests,
// and for giving up on a volume after a fatal store error.
func (v *Volume) Abandon() {
	v.mu.Lock()
	if v.mu.closed {
		v.mu.Unlock()
		return
	}
	v.mu.closed = true
	v.mu.Unlock()
	if v.lw != nil {
		close(v.stopBackground)
		v.lw.stopWaiting()
		v.backgroundWG.Wait()
		v.lw.fence(ErrClosed) // no more store I/O from the log writer
		close(v.lw.done)
		v.lw.wg.Wait()
		v.lw.releaseMemory()
	}
	v.readers.close()
	v.releaseOwner()
	if x := indexFor(v.st); x != nil {
		x.forget(v)
	}
}
