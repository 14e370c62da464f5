package lfs

import (
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The store index (docs/design.md, "Listing a store"; docs/format.md,
// "Store index"): every process that changes volumes keeps one object
// .index/<writer> in the store's root, rewritten whole (written aside,
// renamed into place), holding an entry per volume it created, changed or
// served. A listing reads the root once, the index objects once each, and
// takes for each volume in the root the entry resolveIndex picks; a volume
// without one is read from the store (Stat). This file is the pure part:
// the object's layout and the rule; index_writer.go writes, index_list.go
// lists.

// indexDir is the folder of the index objects in a store's root; no volume
// can have the name (a volume name starts with a letter or digit).
const indexDir = ".index"

// indexVersion is the layout version of an index object; an object of a
// newer version is skipped (its volumes are read from the store).
const indexVersion = 1

// Entry states.
const (
	entryVolume  = ""        // Info and Snapshots describe the volume
	entryRemoved = "removed" // the volume of this uid is being removed: no entry of the uid counts
	entryUnknown = "unknown" // changed in a way the writer did not describe: read the volume
)

// indexEntry is what one writer knows of one volume, as of Updated.
type indexEntry struct {
	Name string `json:"name"`
	// UID is the volume's uid (16 hex digits): entries of a removed
	// volume never describe a new volume of the same name.
	UID string `json:"uid"`
	// Epoch is the owner lock epoch the writer held (0: none, create and
	// clone); Seq orders one writer's entries. Of the entries of one uid,
	// the highest (Epoch, Seq) wins: one epoch belongs to one process.
	Epoch   uint64    `json:"epoch"`
	Seq     uint64    `json:"seq"`
	Updated time.Time `json:"updated"`
	State   string    `json:"state,omitempty"`
	// Info is the volume as Stat shows it (Clones left out: a listing
	// derives them from the clones' Source), when State is entryVolume.
	Info *Info `json:"info,omitempty"`
	// Snapshots are the volume's snapshot names in creation order.
	Snapshots []string `json:"snapshots,omitempty"`
}

// indexWriterID identifies the process that writes an index object.
type indexWriterID struct {
	Host     string `json:"host"`
	PID      int    `json:"pid"`
	PIDStart string `json:"pid_start"`
	Token    string `json:"token"`
}

// indexObject is the content of .index/<writer>.
type indexObject struct {
	Version int           `json:"version"`
	Writer  indexWriterID `json:"writer"`
	// Updated is when the object was written; a live writer with open
	// volumes rewrites it at least every indexHeartbeat.
	Updated time.Time `json:"updated"`
	// Merged is true for an object that folds dead writers' objects
	// together (named merged-<writer>): nobody rewrites it.
	Merged bool `json:"merged,omitempty"`
	// Serve is present while the writer is a serve process that recorded
	// itself (RecordServer); never in a merged object.
	Serve   *ServeRecord `json:"serve,omitempty"`
	Entries []indexEntry `json:"entries"`
}

// The index timing: volumes changed are described again every
// indexInterval; an object of a writer with open volumes is rewritten at
// least every indexHeartbeat; an object not rewritten for indexStale is a
// dead writer's (on another host; on this host the pid says so).
const (
	indexKickDelay = time.Second
	indexInterval  = 5 * time.Second
	indexHeartbeat = 30 * time.Second
	indexStale     = 2 * time.Minute
)

// Merging: a writer looks for dead objects at its first write and then
// every indexMergeEvery, and folds them into one merged object once there
// are indexMergeMin of them. A listing reads at most about that many
// objects more than there are live writers; a merge rewrites what the
// merged objects hold, so a store's short commands (create, rm, ...)
// rewrite the whole index once every indexMergeMin of them.
const (
	indexMergeEvery   = 5 * time.Minute
	indexMergedPrefix = "merged-"
)

// indexMergeMin is 16; tests lower it.
var indexMergeMin = func() *atomic.Int32 { var n atomic.Int32; n.Store(16); return &n }()

// objectName is the writer's object name: host, pid and token.
func (w indexWriterID) objectName() string {
	return path.Join(indexDir, fmt.Sprintf("%s-%d-%s", indexHost(w.Host), w.PID, w.Token))
}

// indexHost reduces a host name to the characters object names allow.
func indexHost(h string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' {
			return r
		}
		return '_'
	}, h)
}

// indexTmp reports whether name, an entry of .index/, is an object being
// written aside (never read).
func indexTmp(name string) bool { return strings.Contains(name, ".tmp-") }

// encodeIndex encodes an index object, entries sorted by name and uid.
func encodeIndex(o indexObject) ([]byte, error) {
	o.Version = indexVersion
	sort.Slice(o.Entries, func(i, j int) bool {
		a, b := o.Entries[i], o.Entries[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.UID < b.UID
	})
	return json.Marshal(o)
}

// decodeIndex decodes an index object; ok is false for one this binary
// must not read (damaged, or of a newer version): its entries are left out.
func decodeIndex(b []byte) (o indexObject, ok bool) {
	if err := json.Unmarshal(b, &o); err != nil || o.Version < 1 || o.Version > indexVersion {
		return indexObject{}, false
	}
	return o, true
}

// alive reports whether the writer of o may still run and write: on this
// host, its process exists (pid and start time); on another, it rewrote
// the object less than indexStale ago.
func (o indexObject) alive() bool {
	if o.Merged {
		return false
	}
	return processAlive(OwnerRecord{Host: o.Writer.Host, PID: o.Writer.PID, PIDStart: o.Writer.PIDStart,
		Renewed: o.Updated, LeaseSeconds: indexStale.Seconds()})
}

// newer reports whether entry a supersedes b (both of one uid).
func (a indexEntry) newer(b indexEntry) bool {
	if a.Epoch != b.Epoch {
		return a.Epoch > b.Epoch
	}
	if a.Seq != b.Seq {
		return a.Seq > b.Seq
	}
	return a.Updated.After(b.Updated)
}

// ownedBy reports whether e claims a live owner that is the writer of the
// object holding it.
func (e indexEntry) ownedBy(w indexWriterID) bool {
	o := e.Info.Owner
	return o.Host == w.Host && o.PID == w.PID && o.PIDStart == w.PIDStart
}

// resolveIndex is the rule a listing applies (docs/design.md): for each
// name, the entries of all objects are grouped by uid; a uid with a
// removed entry is out; when exactly one uid is left, its newest entry
// counts, unless it is unknown, or it names an owner while not sitting in
// that owner's own object written by a live writer (an owner that died
// without describing the volume again: Stat knows whether its lock still
// holds). Names with no entry that counts are absent from the result:
// those volumes are read from the store. objs are the decoded objects, and
// alive whether each one's writer may still run.
func resolveIndex(objs []indexObject, alive []bool) map[string]indexEntry {
	type cand struct {
		e       indexEntry
		trusted bool // its owner claim, if any, holds
	}
	byName := map[string]map[string]cand{}
	removed := map[string]map[string]bool{}
	for i, o := range objs {
		for _, e := range o.Entries {
			if e.State == entryRemoved {
				if removed[e.Name] == nil {
					removed[e.Name] = map[string]bool{}
				}
				removed[e.Name][e.UID] = true
				continue
			}
			if e.State == entryVolume && e.Info == nil {
				continue // malformed
			}
			trusted := e.State != entryVolume || e.Info.Owner == nil || (alive[i] && e.ownedBy(o.Writer))
			uids := byName[e.Name]
			if uids == nil {
				uids = map[string]cand{}
				byName[e.Name] = uids
			}
			c, seen := uids[e.UID]
			switch {
			case !seen || e.newer(c.e):
				uids[e.UID] = cand{e, trusted}
			case !e.newer(c.e) && !c.e.newer(e) && trusted:
				// The same entry in several objects (a merged copy): the
				// owner's own, live copy vouches for the claim.
				uids[e.UID] = cand{e, true}
			}
		}
	}
	out := make(map[string]indexEntry, len(byName))
	for name, uids := range byName {
		var win cand
		n := 0
		for uid, c := range uids {
			if removed[name][uid] {
				continue
			}
			win = c
			n++
		}
		if n != 1 || win.e.State != entryVolume || !win.trusted {
			continue
		}
		out[name] = win.e
	}
	return out
}

// mergeEntries folds entries into dst (keyed by name and uid), keeping
// the newest entry of each uid and every removed entry (it outranks the
// others of its uid whatever their order). Entries of names keep does not
// hold are dropped, and so are entries of a uid removed (only the removed
// entry stays). Owner claims of entries from dead writers (fromDead) are
// dropped: their lock no longer holds, or Stat is asked (resolveIndex).
func mergeEntries(dst map[string]indexEntry, entries []indexEntry, fromDead bool, keep func(name string) bool) {
	for _, e := range entries {
		if keep != nil && !keep(e.Name) {
			continue
		}
		if fromDead && e.Info != nil && e.Info.Owner != nil {
			info := *e.Info
			info.Owner = nil
			e.Info = &info
		}
		k := e.Name + "\x00" + e.UID
		old, ok := dst[k]
		switch {
		case !ok:
			dst[k] = e
		case old.State == entryRemoved:
		case e.State == entryRemoved || e.newer(old):
			dst[k] = e
		}
	}
}

// uidHex formats a volume uid as index entries carry it.
func uidHex(uid uint64) string { return fmt.Sprintf("%016x", uid) }

// parseIndexName splits an index object's name into its host part and pid;
// ok is false for names hlfs does not write there.
func parseIndexName(name string) (host string, pid int, ok bool) {
	base := strings.TrimPrefix(name, indexMergedPrefix)
	if i := strings.Index(base, ".tmp-"); i >= 0 {
		base = base[:i]
	}
	j := strings.LastIndexByte(base, '-')
	if j < 0 {
		return "", 0, false
	}
	i := strings.LastIndexByte(base[:j], '-')
	if i < 0 {
		return "", 0, false
	}
	pid, err := strconv.Atoi(base[i+1 : j])
	if err != nil {
		return "", 0, false
	}
	return base[:i], pid, true
}
