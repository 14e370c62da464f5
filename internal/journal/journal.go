// Package journal is a write-back journal for slow or remote stores (HDFS):
// a Store decorator that keeps log segments on a local directory, where a
// flush is one fdatasync, and ships each completed segment to the remote
// store in the background, removing the local copy once the remote one is
// durable. Every other object (superblocks, checkpoints, snapshot maps,
// owner locks) goes to the remote store directly.
//
// The trade-off, stated plainly: data acknowledged by a flush may live only
// on this host's disk until it is shipped (seconds, one segment at a time).
// If the host is lost, that data is lost with it, and until this host
// serves the volume again with the same journal, other hosts cannot open
// it: a marker object VOL/journal names the host and directory holding
// unshipped segments, and lfs refuses to open the volume elsewhere.
//
// A Journal is safe for concurrent use.
package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
)

// Marker is the name, inside a volume's folder, of the object saying that a
// journal holds segments of the volume not yet shipped to the store.
const Marker = "journal"

// MarkerRecord is the content of the marker object.
type MarkerRecord struct {
	Host  string    `json:"host"`
	Dir   string    `json:"dir"`
	PID   int       `json:"pid"`
	Since time.Time `json:"since"`
}

// Journal is the decorator. Create it with New; Close ships everything left.
type Journal struct {
	local  objstore.Store // segments until shipped
	remote objstore.Store
	dir    string
	log    *slog.Logger

	// mu guards the fields below; no I/O happens under it.
	mu struct {
		sync.Mutex
		queue   []string        // complete local segments to ship, oldest first
		marked  map[string]bool // volumes whose marker this journal wrote
		lastErr error
	}
	lock *os.File // dir, open, holding an exclusive flock: one process per journal
	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

// ErrLocked is returned by New when another process uses the directory.
var ErrLocked = errors.New("journal: directory in use by another process")

var _ objstore.Store = (*Journal)(nil)

// New returns a journal keeping segments under dir in front of remote and
// starts shipping. Segments left in dir by a crash are shipped again.
func New(dir string, remote objstore.Store, log *slog.Logger) (*Journal, error) {
	local, err := objstore.NewDirStore(dir)
	if err != nil {
		return nil, err
	}
	// The lock is on the directory itself, so the journal holds no file of
	// its own: empty means everything was shipped.
	lock, err := os.Open(local.Root())
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%w: %s", ErrLocked, local.Root())
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	j := &Journal{local: local, remote: remote, dir: local.Root(), log: log, lock: lock,
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	j.mu.marked = make(map[string]bool)
	j.wg.Add(1)
	go j.shipLoop()
	return j, nil
}

// SetReplication passes a volume's replication factor to the remote store
// when it replicates (see lfs).
func (j *Journal) SetReplication(vol string, n int) {
	if r, ok := j.remote.(interface{ SetReplication(string, int) }); ok {
		r.SetReplication(vol, n)
	}
}

// isSegment reports whether name is a log segment: VOL/seg/<name>.
func isSegment(name string) bool {
	parts := strings.Split(name, "/")
	return len(parts) == 3 && parts[1] == "seg"
}

// HasJournal reports whether this journal is the one a volume's marker names:
// lfs opens a volume with a pending journal only through its own journal.
func (j *Journal) HasJournal(vol string) bool {
	b, err := objstore.ReadAll(j.remote, path.Join(vol, Marker))
	if err != nil {
		return false
	}
	var rec MarkerRecord
	if json.Unmarshal(b, &rec) != nil {
		return false
	}
	return rec.Dir == j.dir && rec.Host == hostname()
}

// Create implements objstore.Store: segments are created in the journal (and
// must not exist in either place), everything else in the remote store.
func (j *Journal) Create(name string) (objstore.Writer, error) {
	if !isSegment(name) {
		return j.remote.Create(name)
	}
	if err := j.mark(strings.Split(name, "/")[0]); err != nil {
		return nil, err
	}
	// Local first, then the store: a segment leaves the journal only after
	// the store has it, so one of the two checks always sees it.
	w, err := j.local.Create(name)
	if err != nil {
		return nil, err
	}
	if r, err := j.remote.Open(name); err == nil {
		_ = r.Close()
		_ = w.Close()
		_ = j.local.Remove(name)
		return nil, fmt.Errorf("%w: %s (in the store)", objstore.ErrExist, name)
	}
	return &journalWriter{Writer: w, j: j, name: name}, nil
}

// mark writes the volume's marker before its first journaled segment.
func (j *Journal) mark(vol string) error {
	j.mu.Lock()
	done := j.mu.marked[vol]
	j.mu.Unlock()
	if done {
		return nil
	}
	b, _ := json.Marshal(MarkerRecord{Host: hostname(), Dir: j.dir, PID: os.Getpid(), Since: time.Now().UTC()})
	name := path.Join(vol, Marker)
	tmp := fmt.Sprintf("%s.tmp-%d", name, time.Now().UnixNano())
	if err := objstore.WriteAll(j.remote, tmp, b); err != nil {
		return fmt.Errorf("journal: write marker of %s: %w", vol, err)
	}
	if err := j.remote.Rename(tmp, name); err != nil {
		return fmt.Errorf("journal: write marker of %s: %w", vol, err)
	}
	j.mu.Lock()
	j.mu.marked[vol] = true
	j.mu.Unlock()
	return nil
}

type journalWriter struct {
	objstore.Writer
	j    *Journal
	name string
}

var _ objstore.BuffersWriter = (*journalWriter)(nil)

// WriteBuffers keeps the local store's writev (objstore.WriteBuffers).
func (w *journalWriter) WriteBuffers(bufs [][]byte) error {
	return objstore.WriteBuffers(w.Writer, bufs)
}

// Close completes the local segment and queues it for shipping.
func (w *journalWriter) Close() error {
	if err := w.Writer.Close(); err != nil {
		return err
	}
	w.j.enqueue(w.name)
	return nil
}

func (j *Journal) enqueue(name string) {
	j.mu.Lock()
	j.mu.queue = append(j.mu.queue, name)
	j.mu.Unlock()
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// Open implements objstore.Store: the journal's copy first.
func (j *Journal) Open(name string) (objstore.Reader, error) {
	if isSegment(name) {
		if r, err := j.local.Open(name); err == nil {
			return r, nil
		}
	}
	return j.remote.Open(name)
}

// List implements objstore.Store: the union of both places.
func (j *Journal) List(dir string) ([]string, error) {
	names, err := j.remote.List(dir)
	if err != nil {
		return nil, err
	}
	local, err := j.local.List(dir)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		seen[n] = true
	}
	for _, n := range local {
		if !seen[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// Remove implements objstore.Store: from both places.
func (j *Journal) Remove(name string) error {
	lerr := j.local.Remove(name)
	rerr := j.remote.Remove(name)
	if lerr == nil || rerr == nil {
		return nil
	}
	if errors.Is(rerr, objstore.ErrNotExist) {
		return lerr
	}
	return rerr
}

// Rename implements objstore.Store (never used for segments).
func (j *Journal) Rename(from, to string) error { return j.remote.Rename(from, to) }

// Persist implements objstore.Store.
func (j *Journal) Persist(name string) error {
	if isSegment(name) {
		if err := j.local.Persist(name); err == nil {
			return nil
		}
	}
	return j.remote.Persist(name)
}

func (j *Journal) shipLoop() {
	defer j.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-j.done:
			return
		case <-j.kick:
		case <-tick.C:
		}
		_ = j.shipQueued()
	}
}

// shipQueued ships queued segments in order, stopping at the first failure
// (retried on the next tick).
func (j *Journal) shipQueued() error {
	for {
		j.mu.Lock()
		if len(j.mu.queue) == 0 {
			j.mu.Unlock()
			return nil
		}
		name := j.mu.queue[0]
		j.mu.Unlock()
		if err := j.ship(name); err != nil {
			j.mu.Lock()
			j.mu.lastErr = err
			j.mu.Unlock()
			j.log.Warn("shipping a journal segment failed; retrying", "segment", name, "err", err)
			return err
		}
		j.mu.Lock()
		j.mu.queue = j.mu.queue[1:]
		j.mu.lastErr = nil
		j.mu.Unlock()
	}
}

// ship copies one complete local segment to the remote store, durably, then
// removes the local copy. A partial remote copy left by a crash is replaced.
func (j *Journal) ship(name string) error {
	r, err := j.local.Open(name)
	if errors.Is(err, objstore.ErrNotExist) {
		return nil // removed meanwhile (volume removed)
	}
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := j.remote.Create(name)
	if errors.Is(err, objstore.ErrExist) {
		if rerr := j.remote.Remove(name); rerr != nil {
			return rerr
		}
		w, err = j.remote.Create(name)
	}
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, io.NewSectionReader(r, 0, r.Size())); err != nil {
		_ = w.Close()
		return err
	}
	if err := objstore.CloseDurably(w); err != nil {
		return err
	}
	return j.local.Remove(name)
}

// Recover queues the segments a crash left in the journal for volume vol,
// all but the newest, which the volume's writer persists and continues
// after (it is complete, since a writer never appends to a segment it did
// not create); call it before opening the volume. The newest is queued too:
// the writer never reopens it.
func (j *Journal) Recover(vol string) error {
	names, err := j.local.List(path.Join(vol, "seg"))
	if err != nil {
		return err
	}
	for _, n := range names {
		j.enqueue(path.Join(vol, "seg", n))
	}
	if len(names) > 0 {
		j.mu.Lock()
		j.mu.marked[vol] = true // the marker is still there
		j.mu.Unlock()
	}
	return nil
}

// Unwrap returns the store the journal ships to (the store index of a
// process is kept there, lfs.OpenIndex).
func (j *Journal) Unwrap() objstore.Store { return j.remote }

// Close ships every queued segment, removes the markers of volumes with
// nothing left in the journal, and stops. Segments still open (a volume not
// closed) stay in the journal.
func (j *Journal) Close() error {
	close(j.done)
	j.wg.Wait()
	err := j.shipQueued()
	j.mu.Lock()
	vols := make([]string, 0, len(j.mu.marked))
	for v := range j.mu.marked {
		vols = append(vols, v)
	}
	j.mu.Unlock()
	for _, vol := range vols {
		left, lerr := j.local.List(path.Join(vol, "seg"))
		if lerr == nil && len(left) == 0 {
			_ = j.remote.Remove(path.Join(vol, Marker))
		}
	}
	j.lock.Close()
	return err
}

// Abandon stops shipping at once, as a crash would, and releases the
// directory: what is in the journal stays there for the next New.
func (j *Journal) Abandon() {
	close(j.done)
	j.wg.Wait()
	j.lock.Close()
}

// hostname is $HLFS_HOSTNAME when set, else the system's (as lfs does for
// owner locks).
func hostname() string {
	if h := os.Getenv("HLFS_HOSTNAME"); h != "" {
		return h
	}
	h, _ := os.Hostname()
	return h
}
