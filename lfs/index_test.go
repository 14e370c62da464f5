package lfs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// requestCounter counts the requests that reach its store.
type requestCounter struct {
	objstore.Store
	lists, opens atomic.Int64
}

func (c *requestCounter) List(dir string) ([]string, error) {
	c.lists.Add(1)
	return c.Store.List(dir)
}

func (c *requestCounter) Open(name string) (objstore.Reader, error) {
	c.opens.Add(1)
	return c.Store.Open(name)
}

// hostStore is one "host"'s handle on a shared store: its own Index.
type hostStore struct{ objstore.Store }

// die stops x as the end of its process would: nothing more is written.
func (x *Index) die() {
	x.mu.Lock()
	x.mu.closed = true
	x.mu.Unlock()
	close(x.stop)
	x.wg.Wait()
	indexes.CompareAndDelete(x.st, x)
}

func openTestIndex(t *testing.T, st objstore.Store) *Index {
	// Merge whenever a dead object is found.
	old := indexMergeMin.Swap(1)
	t.Cleanup(func() { indexMergeMin.Store(old) })
	x := OpenIndex(st, IndexOptions{})
	t.Cleanup(func() { _ = x.Close() })
	return x
}

// exactInfos is what ls printed before the index: Stat of every volume.
func exactInfos(t *testing.T, st objstore.Store) []Info {
	t.Helper()
	l, err := ListStore(st)
	require.NoError(t, err)
	var out []Info
	for _, n := range l.Volumes {
		info, err := Stat(st, n)
		require.NoError(t, err)
		out = append(out, info)
	}
	return out
}

// indexedInfos lists through the index and says which volumes came from it.
func indexedInfos(t *testing.T, st objstore.Store) ([]Info, map[string]bool) {
	t.Helper()
	sums, err := ListIndexed(st)
	require.NoError(t, err)
	var out []Info
	indexed := map[string]bool{}
	for _, s := range sums {
		require.NoError(t, s.Err)
		out = append(out, s.Info)
		indexed[s.Name] = s.Indexed
	}
	return out, indexed
}

func requireSameInfos(t *testing.T, want, got []Info) {
	t.Helper()
	require.Equal(t, len(want), len(got))
	for i := range want {
		w, g := want[i], got[i]
		require.True(t, w.Created.Equal(g.Created), "%s created", w.Name)
		w.Created, g.Created = time.Time{}, time.Time{}
		if len(w.Clones) == 0 {
			w.Clones = nil
		}
		if len(g.Clones) == 0 {
			g.Clones = nil
		}
		require.Equal(t, w, g)
	}
}

func entry(name, uid string, epoch, seq uint64, size int64) indexEntry {
	return indexEntry{Name: name, UID: uid, Epoch: epoch, Seq: seq, Info: &Info{Name: name, Size: size}}
}

// The rule a listing applies, case by case.
func TestResolveIndexRule(t *testing.T) {
	me := indexWriterID{Host: "h1", PID: 10, PIDStart: "5", Token: "t1"}
	other := indexWriterID{Host: "h2", PID: 20, Token: "t2"}
	owned := entry("v", "u1", 3, 1, 30)
	owned.Info.Owner = &OwnerRecord{Host: "h1", PID: 10, PIDStart: "5", Epoch: 3}
	for _, tc := range []struct {
		name  string
		objs  []indexObject
		alive []bool
		want  map[string]int64 // name -> size of the entry that counts
	}{
		{"newest epoch wins across writers",
			[]indexObject{{Writer: me, Entries: []indexEntry{entry("v", "u1", 2, 9, 20)}}, {Writer: other, Entries: []indexEntry{entry("v", "u1", 3, 1, 30)}}},
			[]bool{true, true}, map[string]int64{"v": 30}},
		{"newest seq wins within an epoch",
			[]indexObject{{Writer: me, Entries: []indexEntry{entry("v", "u1", 2, 5, 20), entry("v", "u1", 2, 6, 25)}}},
			[]bool{true}, map[string]int64{"v": 25}},
		{"a removed uid is ignored whatever its epoch",
			[]indexObject{{Writer: me, Entries: []indexEntry{entry("v", "u1", 7, 5, 20)}}, {Writer: other, Entries: []indexEntry{{Name: "v", UID: "u1", State: entryRemoved}}}},
			[]bool{true, false}, map[string]int64{}},
		{"a removed uid leaves the new volume of the name",
			[]indexObject{{Writer: me, Entries: []indexEntry{entry("v", "u1", 7, 5, 20), entry("v", "u2", 0, 6, 40), {Name: "v", UID: "u1", State: entryRemoved}}}},
			[]bool{true}, map[string]int64{"v": 40}},
		{"two uids of one name: read the volume",
			[]indexObject{{Writer: me, Entries: []indexEntry{entry("v", "u1", 7, 5, 20)}}, {Writer: other, Entries: []indexEntry{entry("v", "u2", 0, 1, 40)}}},
			[]bool{true, true}, map[string]int64{}},
		{"unknown: read the volume",
			[]indexObject{{Writer: me, Entries: []indexEntry{entry("v", "u1", 2, 5, 20), {Name: "v", UID: "u1", Epoch: 3, Seq: 1, State: entryUnknown}}}},
			[]bool{true}, map[string]int64{}},
		{"an older unknown is superseded",
			[]indexObject{{Writer: me, Entries: []indexEntry{{Name: "v", UID: "u1", Epoch: 3, Seq: 1, State: entryUnknown}, entry("v", "u1", 4, 1, 50)}}},
			[]bool{true}, map[string]int64{"v": 50}},
		{"an owner claim counts in its owner's live object",
			[]indexObject{{Writer: me, Entries: []indexEntry{owned}}},
			[]bool{true}, map[string]int64{"v": 30}},
		{"an owner claim of a dead writer does not",
			[]indexObject{{Writer: me, Entries: []indexEntry{owned}}},
			[]bool{false}, map[string]int64{}},
		{"nor a copy in another writer's object",
			[]indexObject{{Writer: other, Entries: []indexEntry{owned}}},
			[]bool{true}, map[string]int64{}},
		{"but a copy beside the owner's own live one does",
			[]indexObject{{Writer: other, Entries: []indexEntry{owned}}, {Writer: me, Entries: []indexEntry{owned}}},
			[]bool{true, true}, map[string]int64{"v": 30}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]int64{}
			for n, e := range resolveIndex(tc.objs, tc.alive) {
				got[n] = e.Info.Size
			}
			require.Equal(t, tc.want, got)
		})
	}
}

// mergeEntries keeps the newest entry of each uid and lets removals win.
func TestMergeEntries(t *testing.T) {
	dst := map[string]indexEntry{}
	owned := entry("a", "u1", 3, 4, 30)
	owned.Info.Owner = &OwnerRecord{Host: "h", PID: 1}
	mergeEntries(dst, []indexEntry{entry("a", "u1", 2, 9, 20), owned, entry("gone", "u9", 1, 1, 1)}, true,
		func(n string) bool { return n != "gone" })
	require.Len(t, dst, 1)
	require.EqualValues(t, 30, dst["a\x00u1"].Info.Size)
	require.Nil(t, dst["a\x00u1"].Info.Owner, "a dead writer's owner claim is dropped")
	require.NotNil(t, owned.Info.Owner, "the source entry is not changed")
	mergeEntries(dst, []indexEntry{{Name: "a", UID: "u1", State: entryRemoved}}, false, nil)
	mergeEntries(dst, []indexEntry{entry("a", "u1", 9, 9, 90)}, false, nil)
	require.Equal(t, entryRemoved, dst["a\x00u1"].State)
}

// A quiet store lists the same through the index as through Stat, in a
// few requests whatever the number of volumes.
func TestListIndexedMatchesStat(t *testing.T) {
	mem := objstore.NewMemStore(false, 1)
	x := openTestIndex(t, mem)
	require.NoError(t, Create(mem, "base", Config{Size: 8 << 20, Compress: true}))
	v, err := Open(mem, "base", Options{})
	require.NoError(t, err)
	require.NoError(t, v.WriteAt(make([]byte, 64<<10), 0, false))
	require.NoError(t, v.WriteAt([]byte(strings.Repeat("x", 8192)), 1<<20, false))
	require.NoError(t, v.CreateSnapshot("s1"))
	require.NoError(t, v.Close())
	require.NoError(t, Clone(mem, "base", "s1", "kid"))
	for i := range 20 {
		require.NoError(t, Create(mem, fmt.Sprintf("v%02d", i), Config{Size: 1 << 20}))
	}
	require.NoError(t, Resize(mem, "v03", 2<<20, false))
	v, err = Open(mem, "kid", Options{})
	require.NoError(t, err)
	require.NoError(t, v.WriteAt([]byte("kid"), 4096, true))
	require.NoError(t, v.Close())
	require.NoError(t, x.flush(false))

	want := exactInfos(t, mem)
	cs := &requestCounter{Store: mem}
	sums, err := ListIndexed(cs)
	require.NoError(t, err)
	var got []Info
	for _, s := range sums {
		require.True(t, s.Indexed, "%s not from the index", s.Name)
		got = append(got, s.Info)
	}
	requireSameInfos(t, want, got)
	require.Equal(t, []string{"s1"}, sums[0].Snapshots)
	require.Equal(t, []string{"kid"}, sums[0].Clones)
	require.EqualValues(t, 2, cs.lists.Load(), "the root and .index/")
	require.EqualValues(t, 1, cs.opens.Load(), "one index object")
}

// Volumes the index does not describe (made without one, as by an older
// hlfs) are read from the store, next to those it does.
func TestListIndexedFallsBack(t *testing.T) {
	mem := objstore.NewMemStore(false, 1)
	require.NoError(t, Create(mem, "old", Config{Size: 1 << 20}))
	x := openTestIndex(t, mem)
	require.NoError(t, Create(mem, "new", Config{Size: 2 << 20}))
	require.NoError(t, x.flush(false))
	got, indexed := indexedInfos(t, mem)
	requireSameInfos(t, exactInfos(t, mem), got)
	require.Equal(t, map[string]bool{"old": false, "new": true}, indexed)
}

// A crash between writing an index object aside and renaming it leaves
// the previous object, or none: listings stay right, the object written
// aside is ignored, and a later writer merges the dead one's object.
func TestIndexCrashBetweenTempAndRename(t *testing.T) {
	mem := objstore.NewMemStore(false, 1)
	x := openTestIndex(t, mem)
	require.NoError(t, Create(mem, "a", Config{Size: 1 << 20}))
	require.NoError(t, x.flush(false))
	mem.SetInjector(func(op objstore.Op, name string) error {
		if op == objstore.OpRename && strings.HasPrefix(name, indexDir+"/") {
			return errors.New("injected: crash before the rename")
		}
		return nil
	})
	require.NoError(t, Create(mem, "b", Config{Size: 2 << 20}))
	require.Error(t, x.flush(false))
	x.die()
	mem.SetInjector(nil)
	mem.Crash()
	// A .tmp- object as a crash would leave it.
	require.NoError(t, objstore.WriteAll(mem, indexDir+"/h-1-x.tmp-1234", []byte("{torn")))

	got, indexed := indexedInfos(t, mem)
	requireSameInfos(t, exactInfos(t, mem), got)
	require.Equal(t, map[string]bool{"a": true, "b": false}, indexed)

	// The next process: the first one is dead; its object is merged.
	// (Both writers are this test's process: processAlive says dead.)
	processAlive = func(rec OwnerRecord) bool { return rec.PID != x.id.PID }
	t.Cleanup(func() { processAlive = processAliveOS })
	next := &hostStore{mem}
	y := openTestIndex(t, next)
	require.NoError(t, Create(next, "c", Config{Size: 1 << 20}))
	y.mu.Lock()
	y.mu.dirty = true
	y.mu.Unlock()
	require.NoError(t, y.flush(false))
	names, err := mem.List(indexDir)
	require.NoError(t, err)
	require.Contains(t, names, "h-1-x.tmp-1234", "another host's object written aside stays")
	require.NotContains(t, names, strings.TrimPrefix(x.id.objectName(), indexDir+"/"), "the dead object was merged")
	got, indexed = indexedInfos(t, mem)
	requireSameInfos(t, exactInfos(t, mem), got)
	require.Equal(t, map[string]bool{"a": true, "b": false, "c": true}, indexed)
}

// A removed volume disappears even while an object still names it; a name
// two uids claim is read from the store until a merge settles it; a
// removal cut short after its index entry leaves a volume read from the
// store.
func TestIndexRemovedVolumes(t *testing.T) {
	mem := objstore.NewMemStore(false, 1)
	x := openTestIndex(t, mem)
	for _, n := range []string{"a", "b", "c"} {
		require.NoError(t, Create(mem, n, Config{Size: 1 << 20}))
	}
	require.NoError(t, x.flush(false))
	// A stale object of a live writer on another host names "gone" and
	// an old incarnation of "b".
	stale := indexObject{Writer: indexWriterID{Host: "elsewhere", PID: 7, Token: "z"}, Updated: time.Now().UTC(),
		Entries: []indexEntry{entry("gone", "00", 1, 1, 5), entry("b", "0000000000000001", 9, 9, 5)}}
	b, err := encodeIndex(stale)
	require.NoError(t, err)
	require.NoError(t, objstore.WriteAll(mem, stale.Writer.objectName(), b))

	require.NoError(t, Remove(mem, "a"))
	got, indexed := indexedInfos(t, mem)
	requireSameInfos(t, exactInfos(t, mem), got)
	require.Equal(t, map[string]bool{"b": false, "c": true}, indexed)

	// A merge settles "b" by its superblock.
	x.merged = time.Time{}
	x.mu.Lock()
	x.mu.dirty = true
	x.mu.Unlock()
	require.NoError(t, x.flush(false))
	_, indexed = indexedInfos(t, mem)
	require.Equal(t, map[string]bool{"b": true, "c": true}, indexed)

	// rm cut short after its index entry: the volume is read from the store.
	mem.SetInjector(func(op objstore.Op, name string) error {
		if op == objstore.OpRemove && name == "c/super" {
			return errors.New("injected")
		}
		return nil
	})
	require.Error(t, Remove(mem, "c"))
	mem.SetInjector(nil)
	got, indexed = indexedInfos(t, mem)
	requireSameInfos(t, exactInfos(t, mem), got)
	require.Equal(t, map[string]bool{"b": true, "c": false}, indexed)
}

// Two hosts create, write and close volumes at once, each with its own
// index object: a listing sees every volume, described as Stat sees it.
func TestIndexTwoHostsAtOnce(t *testing.T) {
	mem := objstore.NewMemStore(false, 1)
	var hosts []*hostStore
	var idx []*Index
	for _, h := range []string{"host-a", "host-b"} {
		t.Setenv("HLFS_HOSTNAME", h)
		st := &hostStore{mem}
		hosts = append(hosts, st)
		idx = append(idx, openTestIndex(t, st))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i, st := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 10 {
				name := fmt.Sprintf("h%d-v%d", i, k)
				if err := Create(st, name, Config{Size: 1 << 20}); err != nil {
					errs <- err
					return
				}
				v, err := Open(st, name, Options{})
				if err != nil {
					errs <- err
					return
				}
				err = v.WriteAt(make([]byte, 4096*(k+1)), 0, true)
				if cerr := v.Close(); err == nil {
					err = cerr
				}
				if err == nil {
					err = idx[i].flush(false)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got, indexed := indexedInfos(t, mem)
	requireSameInfos(t, exactInfos(t, mem), got)
	require.Len(t, indexed, 20)
	for n, ok := range indexed {
		require.True(t, ok, n)
	}
}

// A volume open for writing is described in the background with its owner
// and snapshots; abandoned (a crash), it is read from the store.
func TestIndexServedVolume(t *testing.T) {
	mem := objstore.NewMemStore(false, 1)
	x := openTestIndex(t, mem)
	require.NoError(t, Create(mem, "s", Config{Size: 4 << 20}))
	v, err := Open(mem, "s", Options{})
	require.NoError(t, err)
	require.NoError(t, v.WriteAt(make([]byte, 1<<20), 0, true))
	require.NoError(t, v.CreateSnapshot("one"))
	x.describeChanged()
	require.NoError(t, x.flush(true))
	sums, err := ListIndexed(mem)
	require.NoError(t, err)
	require.True(t, sums[0].Indexed)
	require.NotNil(t, sums[0].Owner)
	require.Equal(t, v.owner.epoch, sums[0].Owner.Epoch)
	require.Equal(t, []string{"one"}, sums[0].Snapshots)
	require.Positive(t, sums[0].Segments)

	// The same writer, dead (another process reading after a crash): its
	// owner claim no longer counts.
	processAlive = func(OwnerRecord) bool { return false }
	sums, err = ListIndexed(mem)
	processAlive = processAliveOS
	require.NoError(t, err)
	require.False(t, sums[0].Indexed)

	v.Abandon()
	require.NoError(t, x.flush(false))
	sums, err = ListIndexed(mem)
	require.NoError(t, err)
	require.False(t, sums[0].Indexed)
	require.Nil(t, sums[0].Owner)
}

// Short commands each leave an object; once indexMergeMin of them are dead
// the next writer folds them into one merged object, so a listing reads a
// few objects however many commands ran.
func TestIndexMergesDeadWriters(t *testing.T) {
	mem := objstore.NewMemStore(false, 1)
	var dead []int
	processAlive = func(rec OwnerRecord) bool { return !slices.Contains(dead, rec.PID) }
	t.Cleanup(func() { processAlive = processAliveOS })
	for i := range 40 {
		st := &hostStore{mem}
		x := OpenIndex(st, IndexOptions{})
		x.id.PID = 100000 + i // a process of its own, gone once done
		require.NoError(t, Create(st, fmt.Sprintf("v%02d", i), Config{Size: 1 << 20}))
		require.NoError(t, x.Close())
		dead = append(dead, x.id.PID)
	}
	names, err := mem.List(indexDir)
	require.NoError(t, err)
	require.Less(t, len(names), 2*16, "merged every 16 dead objects")
	require.True(t, slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, indexMergedPrefix) }), "%v", names)
	got, indexed := indexedInfos(t, mem)
	requireSameInfos(t, exactInfos(t, mem), got)
	require.Len(t, indexed, 40)
	for n, ok := range indexed {
		require.True(t, ok, n)
	}
}

// On a local store a listing also reads each described volume's
// superblock: a volume replaced behind the index's back (by an hlfs that
// keeps none) is read from the store, not shown as described.
func TestListIndexedLocalChecksSuperblocks(t *testing.T) {
	dir, err := objstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	x := openTestIndex(t, dir)
	require.NoError(t, Create(dir, "a", Config{Size: 1 << 20}))
	require.NoError(t, Create(dir, "b", Config{Size: 1 << 20}))
	require.NoError(t, x.Close())
	// An older hlfs removes and creates "b" again: no index entries.
	require.NoError(t, Remove(dir, "b"))
	require.NoError(t, Create(dir, "b", Config{Size: 3 << 20}))
	got, indexed := indexedInfos(t, dir)
	requireSameInfos(t, exactInfos(t, dir), got)
	require.Equal(t, map[string]bool{"a": true, "b": false}, indexed)
}

// A serve of the whole store records itself in its index object: Servers
// finds the live ones, sorted; a dead writer's record and a removed one
// are not found; the record keeps the object rewritten with no volume
// open, so that other hosts see the writer alive.
func TestIndexServers(t *testing.T) {
	mem := objstore.NewMemStore(false, 1)
	require.Error(t, RecordServer(mem, &ServeRecord{}), "no index open")
	var idx []*Index
	for _, h := range []string{"host-b", "host-a"} {
		t.Setenv("HLFS_HOSTNAME", h)
		st := &hostStore{mem}
		idx = append(idx, openTestIndex(t, st))
		require.NoError(t, RecordServer(st, &ServeRecord{NBD: []string{"nbd://" + h + ":10809"}, WholeStore: true}))
	}
	got, err := Servers(mem)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, "host-a", got[0].Host)
	require.Equal(t, []string{"nbd://host-a:10809"}, got[0].NBD)
	require.True(t, got[0].WholeStore)
	require.Equal(t, Server{Host: "host-b", PID: idx[0].id.PID, Token: idx[0].id.Token,
		ServeRecord: ServeRecord{NBD: []string{"nbd://host-b:10809"}, WholeStore: true}}, got[1])

	processAlive = func(rec OwnerRecord) bool { return rec.Host != "host-b" }
	got, err = Servers(mem)
	processAlive = processAliveOS
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "host-a", got[0].Host)

	// The heartbeat: nothing changed, no volume open, yet the object is
	// rewritten once it is due.
	x := idx[1]
	o, ok, err := readIndexObject(mem, strings.TrimPrefix(x.id.objectName(), indexDir+"/"))
	require.True(t, ok)
	require.NoError(t, err)
	x.ioMu.Lock()
	x.written = time.Now().Add(-indexHeartbeat)
	x.ioMu.Unlock()
	require.NoError(t, x.flush(true))
	o2, _, err := readIndexObject(mem, strings.TrimPrefix(x.id.objectName(), indexDir+"/"))
	require.NoError(t, err)
	require.True(t, o2.Updated.After(o.Updated), "heartbeat rewrote the object")

	require.NoError(t, RecordServer(x.st, nil))
	got, err = Servers(mem)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "host-b", got[0].Host)
	x.ioMu.Lock()
	x.written = time.Now().Add(-indexHeartbeat)
	x.ioMu.Unlock()
	o, _, _ = readIndexObject(mem, strings.TrimPrefix(x.id.objectName(), indexDir+"/"))
	require.NoError(t, x.flush(true))
	o2, _, _ = readIndexObject(mem, strings.TrimPrefix(x.id.objectName(), indexDir+"/"))
	require.Equal(t, o.Updated, o2.Updated, "no heartbeat without a record or open volumes")
}
