package lfs

import (
	"errors"
	"sort"
	"strings"
	"sync"

	"github.com/hlfs/hlfs/internal/objstore"
)

// VolumeSummary is one volume as ListIndexed shows it.
type VolumeSummary struct {
	// Info is what Stat says, or what the index says Stat would have said
	// at its last description (docs/design.md, "Listing a store": which
	// fields may be behind, and by how much).
	Info
	// Snapshots are the volume's snapshot names in creation order; known
	// only for an Indexed volume (nil otherwise: open the volume to list
	// them).
	Snapshots []string `json:"snapshots,omitempty"`
	// Indexed is true when the summary comes from the index, false when
	// the volume was read from the store (Stat).
	Indexed bool `json:"-"`
	// Err is Stat's error for a volume read from the store: a
	// *DamagedError (Info then says what is known), or another failure.
	Err error `json:"-"`
}

// IndexedListing is what ListIndexedStore found.
type IndexedListing struct {
	// Volumes are the store's volumes sorted by name, damaged ones
	// included, exactly the names ListStore returns.
	Volumes []VolumeSummary
	// Ignored are the root's entries that are not volumes (ListStore).
	Ignored []Ignored
}

// ListIndexed lists the store's volumes with their summaries, reading the
// store index: the store's root once, the index objects once each, and
// only the volumes the index does not describe (ListIndexedStore).
func ListIndexed(st objstore.Store) ([]VolumeSummary, error) {
	l, err := ListIndexedStore(st)
	return l.Volumes, err
}

// statWorkers bounds the volumes read from the store at once when the
// index does not describe them.
const statWorkers = 8

// ListIndexedStore lists the store as ListStore does, with a summary of
// each volume: from the index where it describes the volume
// (resolveIndex), else from Stat. The names are always those of the root:
// a volume removed is gone even if an index object still names it, and a
// volume the index does not know is read like in a store without one.
func ListIndexedStore(st objstore.Store) (IndexedListing, error) {
	var l IndexedListing
	root, err := st.List("")
	if err != nil {
		return l, err
	}
	objs, alive, err := readIndexObjects(st)
	if err != nil {
		return l, err
	}
	known := resolveIndex(objs, alive)
	type slot struct {
		sum     VolumeSummary
		ignored *Ignored
		vol     bool
		err     error
	}
	// On a local store each described volume's superblock is read too (a
	// system call): one damaged, or replaced by an hlfs that keeps no
	// index, since its description is then read from the store.
	local := false
	if l, ok := st.(objstore.Local); ok {
		local = l.Local()
	}
	slots := make([]slot, len(root))
	var todo []int
	for i, n := range root {
		if n == indexDir {
			continue
		}
		if e, ok := known[n]; ok {
			slots[i] = slot{vol: true, sum: VolumeSummary{Info: *e.Info, Snapshots: e.Snapshots, Indexed: true}}
			slots[i].sum.Name = n
		}
		if !slots[i].vol || local {
			todo = append(todo, i)
		}
	}
	parallel(todo, func(i int) {
		s := &slots[i]
		if s.vol {
			sb, err := readSuperblock(st, root[i])
			if err == nil && uidHex(sb.uid) == known[root[i]].UID && sb.size == s.sum.Size {
				return // as described
			}
			*s = slot{}
		}
		s.ignored, s.vol, s.err = classifyRootEntry(st, root[i])
		if s.vol && s.err == nil {
			s.sum.Info, s.sum.Err = Stat(st, root[i])
			s.sum.Name = root[i]
		}
	})
	for _, s := range slots {
		switch {
		case s.err != nil:
			return IndexedListing{}, s.err
		case s.ignored != nil:
			l.Ignored = append(l.Ignored, *s.ignored)
		case s.vol:
			l.Volumes = append(l.Volumes, s.sum)
		}
	}
	deriveClones(l.Volumes)
	return l, nil
}

// parallel calls fn for each of items, statWorkers at a time.
func parallel(items []int, fn func(int)) {
	var wg sync.WaitGroup
	work := make(chan int)
	for range min(statWorkers, len(items)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				fn(i)
			}
		}()
	}
	for _, i := range items {
		work <- i
	}
	close(work)
	wg.Wait()
}

// classifyRootEntry says what entry n of a store's root is (ListStore's
// rule): a volume, something to ignore, or neither (an empty folder).
func classifyRootEntry(st objstore.Store, n string) (*Ignored, bool, error) {
	entries, err := st.List(n)
	switch {
	case errors.Is(err, objstore.ErrNotFolder):
		return &Ignored{Name: n, Kind: IgnoredFile}, false, nil
	case err != nil:
		return nil, false, err
	case ValidateName(n) != nil:
		return &Ignored{Name: n, Kind: IgnoredName}, false, nil
	}
	isVol, err := holdsVolume(st, n, entries)
	switch {
	case err != nil:
		return nil, false, err
	case isVol:
		return nil, true, nil
	case len(entries) > 1 || (len(entries) == 1 && entries[0] != "super"):
		return &Ignored{Name: n, Kind: IgnoredLeftover, Entries: entries}, false, nil
	}
	return nil, false, nil
}

// deriveClones fills in the clones of each volume described by the index
// from the Source of the volumes listed: an entry does not carry them (a
// clone made later would leave its source's entry behind). Volumes read
// from the store keep Stat's.
func deriveClones(vols []VolumeSummary) {
	clones := map[string][]string{}
	for _, v := range vols {
		if src, _, ok := strings.Cut(v.Source, "@"); ok {
			clones[src] = append(clones[src], v.Name)
		}
	}
	for i := range vols {
		if vols[i].Indexed {
			c := clones[vols[i].Name]
			sort.Strings(c)
			vols[i].Clones = c
		}
	}
}

// readIndexObjects reads every index object of the store that this binary
// reads, and whether each one's writer may still run. Objects being
// written aside, and objects removed meanwhile (merged), are skipped.
func readIndexObjects(st objstore.Store) ([]indexObject, []bool, error) {
	var objs []indexObject
	var alive []bool
	read := map[string]bool{}
	// An object merged into another and removed while this reads: its
	// entries are in an object written since, found by listing again.
	for round, again := 0, true; again && round < 3; round++ {
		again = false
		names, err := st.List(indexDir)
		if err != nil && !errors.Is(err, objstore.ErrNotFolder) {
			return nil, nil, err
		}
		for _, n := range names {
			if indexTmp(n) || read[n] {
				continue
			}
			read[n] = true
			o, ok, err := readIndexObject(st, n)
			if err != nil {
				return nil, nil, err
			}
			if !ok {
				again = true // merged meanwhile, or unreadable
				continue
			}
			objs = append(objs, o)
			alive = append(alive, o.alive())
		}
	}
	return objs, alive, nil
}
