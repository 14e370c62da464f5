package lfs

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/snapshot"
)

// Index keeps this process's object of a store's index (index.go) up to
// date. Open one per store and process with OpenIndex; from then on lfs
// describes every volume of that store the process creates, clones,
// resizes, repairs, removes or opens for writing, with no store I/O on the
// path of reads and writes: open volumes are described again in the
// background every few seconds when they changed, and on Close. Without
// an Index (tests, libraries) nothing is written and listings read every
// volume. Safe for concurrent use.
type Index struct {
	st  objstore.Store
	id  indexWriterID
	log *slog.Logger

	// mu guards the fields in it; no I/O happens under it.
	mu struct {
		sync.Mutex
		entries map[string]indexEntry // by name + "\x00" + uid
		seq     uint64                // last Seq given out
		dirty   bool                  // entries changed since the last write
		vols    map[*Volume]string    // open volumes and their fingerprint at the last description
		serve   *ServeRecord          // RecordServer's record, nil for none
		closed  bool
	}
	// ioMu serializes writes of the object; it guards merged and written.
	ioMu    sync.Mutex
	merged  time.Time // last merge of dead writers' objects
	written time.Time // last successful write

	kick chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
}

// IndexOptions tune OpenIndex.
type IndexOptions struct {
	// Logger receives errors writing the index; nil discards. They fail no
	// operation but Remove (which must record the removal before it
	// removes anything): a volume whose entry could not be written is read
	// from the store by listings.
	Logger *slog.Logger
}

// indexes maps each store to its Index (indexFor).
var indexes sync.Map // objstore.Store -> *Index

// OpenIndex starts keeping this process's index object in st and returns
// it; Close flushes it and stops. A second OpenIndex of the same store
// replaces the first as the one lfs uses.
func OpenIndex(st objstore.Store, opts IndexOptions) *Index {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	x := &Index{st: st, log: log, kick: make(chan struct{}, 1), stop: make(chan struct{}),
		id: indexWriterID{Host: hostname(), PID: os.Getpid(), PIDStart: pidStart(os.Getpid()), Token: fmt.Sprintf("%016x", newUID())}}
	x.mu.entries = map[string]indexEntry{}
	x.mu.vols = map[*Volume]string{}
	indexes.Store(st, x)
	x.wg.Add(1)
	go x.loop()
	return x
}

// indexFor returns the Index of st, or of the store st wraps (a journal),
// or nil.
func indexFor(st objstore.Store) *Index {
	for st != nil {
		if x, ok := indexes.Load(st); ok {
			return x.(*Index)
		}
		u, ok := st.(interface{ Unwrap() objstore.Store })
		if !ok {
			return nil
		}
		st = u.Unwrap()
	}
	return nil
}

// Close describes the volumes still open as they are, writes the object
// and stops. Later changes are not recorded.
func (x *Index) Close() error {
	x.mu.Lock()
	if x.mu.closed {
		x.mu.Unlock()
		return nil
	}
	x.mu.closed = true
	x.mu.Unlock()
	close(x.stop)
	x.wg.Wait()
	indexes.CompareAndDelete(x.st, x)
	x.describeChanged()
	return x.flush(false)
}

// loop describes changed volumes and writes the object every
// indexInterval, or at once when kicked.
func (x *Index) loop() {
	defer x.wg.Done()
	tick := time.NewTicker(indexInterval)
	defer tick.Stop()
	for {
		select {
		case <-x.stop:
			return
		case <-tick.C:
			x.describeChanged()
		case <-x.kick:
			// Changes that come together (a server closing its volumes)
			// make one write: at most one a second.
			select {
			case <-x.stop:
				return
			case <-time.After(indexKickDelay):
			}
		}
		if err := x.flush(true); err != nil {
			x.log.Warn("writing the store index failed; listings read the volumes meanwhile", "err", err)
		}
	}
}

// put records e with the next sequence number.
func (x *Index) put(e indexEntry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.putLockedMu(e)
}

func (x *Index) putLockedMu(e indexEntry) {
	x.mu.seq++
	e.Seq, e.Updated = x.mu.seq, time.Now().UTC()
	mergeEntries(x.mu.entries, []indexEntry{e}, false, nil)
	x.mu.dirty = true
}

// kickFlush asks the loop to write the object soon.
func (x *Index) kickFlush() {
	select {
	case x.kick <- struct{}{}:
	default:
	}
}

// flush writes the object when entries changed, or (background) when the
// heartbeat is due while volumes are open or a serve record is kept. The first write of a process,
// and one every few minutes, first merges the objects of dead writers into
// this one and removes them.
func (x *Index) flush(background bool) error {
	x.ioMu.Lock()
	defer x.ioMu.Unlock()
	x.mu.Lock()
	due := x.mu.dirty || (background && (len(x.mu.vols) > 0 || x.mu.serve != nil) && time.Since(x.written) >= indexHeartbeat)
	x.mu.Unlock()
	if !due {
		return nil
	}
	if time.Since(x.merged) >= indexMergeEvery {
		if err := x.mergeLockedIO(); err != nil {
			return err
		}
		x.merged = time.Now()
	}
	x.mu.Lock()
	o := indexObject{Writer: x.id, Updated: time.Now().UTC(), Serve: x.mu.serve, Entries: make([]indexEntry, 0, len(x.mu.entries))}
	for _, e := range x.mu.entries {
		o.Entries = append(o.Entries, e)
	}
	x.mu.dirty = false
	x.mu.Unlock()
	b, err := encodeIndex(o)
	if err == nil {
		err = replaceObject(x.st, x.id.objectName(), b)
	}
	if err != nil {
		x.mu.Lock()
		x.mu.dirty = true
		x.mu.Unlock()
		return err
	}
	x.written = time.Now()
	return nil
}

// mergeLockedIO tidies the index (docs/design.md, "Listing a store"):
// when at least indexMergeMin objects are dead (their writers are gone:
// short commands, crashed servers, earlier merges), it folds them into one
// new merged object, written before they are removed; entries of names the
// store's root no longer holds are dropped from it and from this
// process's entries; a name that two uids claim is settled by reading its
// superblock (the others get a removed entry here). Objects written aside
// by dead writers of this host are removed.
func (x *Index) mergeLockedIO() error {
	names, err := x.st.List(indexDir)
	if err != nil {
		return err
	}
	own := path.Base(x.id.objectName())
	var dead []string
	var objs, small []indexObject // small: every object read but merged ones
	for _, n := range names {
		if indexTmp(n) {
			// Written aside by a writer of this host that died before
			// renaming it.
			if host, pid, ok := parseIndexName(n); ok && host == indexHost(x.id.Host) && pid != x.id.PID &&
				!processAlive(OwnerRecord{Host: x.id.Host, PID: pid}) {
				_ = x.st.Remove(path.Join(indexDir, n))
			}
			continue
		}
		if n == own {
			continue
		}
		if strings.HasPrefix(n, indexMergedPrefix) {
			dead = append(dead, n) // read below, if merging
			continue
		}
		o, ok, err := readIndexObject(x.st, n)
		if err != nil {
			return err
		}
		if ok {
			small = append(small, o) // dead ones too: settleUIDs reads them
		}
		if ok && !o.alive() {
			dead = append(dead, n)
		}
	}
	if len(dead) < int(indexMergeMin.Load()) {
		x.settleUIDs(small, func(string) bool { return true })
		return nil
	}
	var read []string
	for _, n := range dead {
		o, ok, err := readIndexObject(x.st, n)
		if err != nil {
			return err
		}
		if ok {
			objs = append(objs, o)
			read = append(read, n)
		}
	}
	// The root is listed after the objects were read: an entry is written
	// after its volume's superblock exists, so a name missing now was
	// removed.
	x.mu.Lock()
	seqAtList := x.mu.seq
	x.mu.Unlock()
	root, err := x.st.List("")
	if err != nil {
		return err
	}
	inRoot := func(name string) bool { _, ok := slices.BinarySearch(root, name); return ok }
	merged := map[string]indexEntry{}
	for _, o := range objs {
		mergeEntries(merged, o.Entries, true, inRoot)
	}
	others := slices.Clone(small)
	others = append(others, indexObject{Entries: slices.Collect(maps.Values(merged))})
	x.settleUIDs(others, inRoot)
	mid := x.id
	mid.Token = fmt.Sprintf("%016x", newUID())
	mo := indexObject{Writer: mid, Merged: true, Updated: time.Now().UTC(), Entries: make([]indexEntry, 0, len(merged))}
	for _, e := range merged {
		mo.Entries = append(mo.Entries, e)
	}
	b, err := encodeIndex(mo)
	if err == nil {
		err = replaceObject(x.st, path.Join(indexDir, indexMergedPrefix+path.Base(mid.objectName())), b)
	}
	if err != nil {
		return err
	}
	for _, n := range read { // folded into the merged object, which is durable
		if err := x.st.Remove(path.Join(indexDir, n)); err != nil && !errors.Is(err, objstore.ErrNotExist) {
			x.log.Warn("removing a merged index object failed", "object", n, "err", err)
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for k, e := range x.mu.entries {
		if e.Seq <= seqAtList && !inRoot(e.Name) {
			delete(x.mu.entries, k)
			x.mu.dirty = true
		}
	}
	return nil
}

// settleUIDs finds names that entries of two uids claim, in objs and in
// this process's entries, and reads their superblocks: the uids that are
// no longer the volume's get a removed entry in this process's object.
func (x *Index) settleUIDs(objs []indexObject, inRoot func(string) bool) {
	uids := map[string]map[string]bool{}
	note := func(e indexEntry) {
		if e.State == entryRemoved || !inRoot(e.Name) {
			return
		}
		if uids[e.Name] == nil {
			uids[e.Name] = map[string]bool{}
		}
		uids[e.Name][e.UID] = true
	}
	for _, o := range objs {
		for _, e := range o.Entries {
			note(e)
		}
	}
	x.mu.Lock()
	for _, e := range x.mu.entries {
		note(e)
	}
	x.mu.Unlock()
	for name, set := range uids {
		if len(set) < 2 {
			continue
		}
		sb, err := readSuperblock(x.st, name)
		if err != nil {
			continue // damaged or gone: listings read it anyway
		}
		for uid := range set {
			if uid != uidHex(sb.uid) {
				x.put(indexEntry{Name: name, UID: uid, State: entryRemoved})
			}
		}
	}
}

// readIndexObject reads .index/name; ok is false when it is gone (merged
// meanwhile) or not readable by this binary.
func readIndexObject(st objstore.Store, name string) (indexObject, bool, error) {
	b, err := readObject(st, path.Join(indexDir, name))
	if errors.Is(err, objstore.ErrNotExist) {
		return indexObject{}, false, nil
	}
	if err != nil {
		return indexObject{}, false, err
	}
	o, ok := decodeIndex(b)
	return o, ok, nil
}

// describeChanged describes again every open volume whose contents,
// checkpoints or snapshots changed since it was last described.
func (x *Index) describeChanged() {
	x.mu.Lock()
	vols := make(map[*Volume]string, len(x.mu.vols))
	for v, fp := range x.mu.vols {
		vols[v] = fp
	}
	x.mu.Unlock()
	for v, fp := range vols {
		now := v.indexFingerprint()
		if now == fp {
			continue
		}
		e, err := v.indexEntry(v.lin, true)
		if err != nil {
			x.log.Warn("describing a volume for the store index failed", "volume", v.name, "err", err)
			continue
		}
		x.mu.Lock()
		if _, open := x.mu.vols[v]; open { // Close describes it itself
			x.putLockedMu(e)
			x.mu.vols[v] = now
		}
		x.mu.Unlock()
	}
}

// opened registers a volume opened for writing: the loop describes it
// soon (no store I/O here: opening on demand stays fast).
func (x *Index) opened(v *Volume) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.mu.closed {
		x.mu.vols[v] = ""
	}
}

// closed describes a volume closed (its owner lock released) and forgets
// it; the loop, or Index.Close, writes the entry. When nothing changed
// since the last description, that one is reused without its owner (no
// store I/O: closing many idle volumes stays cheap).
func (x *Index) closed(v *Volume) {
	fp := v.indexFingerprint()
	key := v.name + "\x00" + uidHex(v.sb.uid)
	x.mu.Lock()
	last, described := x.mu.vols[v]
	delete(x.mu.vols, v)
	prev, ok := x.mu.entries[key]
	if described && last == fp && ok && prev.Epoch == v.owner.epoch && prev.State == entryVolume {
		info := *prev.Info
		info.Owner = nil
		prev.Info = &info
		x.putLockedMu(prev)
		x.mu.Unlock()
		x.kickFlush()
		return
	}
	x.mu.Unlock()
	lin, err := readLineage(v.st, v.name) // flatten changes it
	if err != nil {
		lin = v.lin
	}
	e, err := v.indexEntry(lin, false)
	if err != nil {
		x.log.Warn("describing a volume for the store index failed", "volume", v.name, "err", err)
		x.put(indexEntry{Name: v.name, UID: uidHex(v.sb.uid), Epoch: v.owner.epoch, State: entryUnknown})
	} else {
		x.put(e)
	}
	x.kickFlush()
}

// forget drops an abandoned volume: its last entry may claim an owner that
// no longer holds, so listings read it from the store until it is
// described again.
func (x *Index) forget(v *Volume) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, open := x.mu.vols[v]; open {
		delete(x.mu.vols, v)
		x.putLockedMu(indexEntry{Name: v.name, UID: uidHex(v.sb.uid), Epoch: v.owner.epoch, State: entryUnknown})
	}
}

// indexFingerprint changes whenever what an entry says of v may have:
// log bytes appended, checkpoints written, segments deleted, snapshots.
func (v *Volume) indexFingerprint() string {
	return fmt.Sprintf("%d/%d/%q", v.lw.bytesWritten(), v.indexGen.Load(), v.SnapshotNames())
}

// indexEntry describes v as Stat would, counting its objects in the store
// (one listing of its segments and one of its checkpoints); owned says
// whether v still holds its owner lock.
func (v *Volume) indexEntry(lin snapshot.Lineage, owned bool) (indexEntry, error) {
	sb := v.sb
	info := Info{Name: v.name, Size: sb.size, BlockSize: sb.blockSize, Compress: sb.compress,
		SegmentSize: sb.segmentSize, Created: sb.created, Replication: sb.replication}
	if err := countObjects(v.st, v.name, &info); err != nil {
		return indexEntry{}, err
	}
	if src := lin.Source(); src != "" {
		info.Source = src + "@" + lin.SourceName
	}
	if owned {
		rec := v.owner.record()
		info.Owner = &rec
	}
	return indexEntry{Name: v.name, UID: uidHex(sb.uid), Epoch: v.owner.epoch, Info: &info, Snapshots: v.SnapshotNames()}, nil
}

// indexCreated describes a volume just created or cloned (epoch 0: no
// owner lock), from its superblock and lineage, with no snapshot.
func indexCreated(st objstore.Store, name string) {
	x := indexFor(st)
	if x == nil {
		return
	}
	info, err := Stat(st, name)
	if err != nil {
		x.log.Warn("describing a new volume for the store index failed", "volume", name, "err", err)
		return
	}
	sb, err := readSuperblock(st, name)
	if err != nil {
		return
	}
	info.Clones = nil
	x.put(indexEntry{Name: name, UID: uidHex(sb.uid), Info: &info})
	x.kickFlush()
}

// indexRemoving records, durably, that the volume is being removed,
// before anything of it is: an entry never outlives its volume, even when
// the removal is cut short. Without its superblock (known false: damaged,
// or a leftover) every uid the index knows of the name is marked. An
// error stops the removal.
func indexRemoving(st objstore.Store, name string, sb superblock, known bool) error {
	x := indexFor(st)
	if x == nil {
		return nil
	}
	uids := []string{uidHex(sb.uid)}
	if !known {
		objs, _, err := readIndexObjects(st)
		if err != nil {
			return fmt.Errorf("lfs: read the store index: %w", err)
		}
		uids = uids[:0]
		for _, o := range objs {
			for _, e := range o.Entries {
				if e.Name == name && !slices.Contains(uids, e.UID) {
					uids = append(uids, e.UID)
				}
			}
		}
		if len(uids) == 0 {
			return nil
		}
	}
	for _, uid := range uids {
		x.put(indexEntry{Name: name, UID: uid, State: entryRemoved})
	}
	if err := x.flush(false); err != nil {
		return fmt.Errorf("lfs: record the removal of %s in the store index: %w", name, err)
	}
	return nil
}

// indexUnknown records that the volume changed in a way this process does
// not describe (a rebuilt superblock): listings read it from the store
// until its next description.
func indexUnknown(st objstore.Store, name string, uid, epoch uint64) {
	if x := indexFor(st); x != nil {
		x.put(indexEntry{Name: name, UID: uidHex(uid), Epoch: epoch, State: entryUnknown})
		x.kickFlush()
	}
}
