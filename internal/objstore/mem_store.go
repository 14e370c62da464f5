package objstore

import (
	"fmt"
	"io"
	"math/rand"
	"path"
	"sort"
	"strings"
	"sync"
)

// Op names a store operation, for fault injection.
type Op string

// The operations MemStore reports to its Injector.
const (
	OpCreate  Op = "create"
	OpOpen    Op = "open"
	OpList    Op = "list"
	OpRemove  Op = "remove"
	OpRename  Op = "rename"
	OpPersist Op = "persist"
	OpWrite   Op = "write"
	OpSync    Op = "sync"
	OpClose   Op = "close"
	OpReadAt  Op = "readat"
)

// Injector decides whether an operation fails: a non-nil error is returned
// to the caller instead of doing the operation.
type Injector func(op Op, name string) error

// MemStore keeps objects in memory and models what a crash keeps: names are
// durable once created or renamed, bytes once synced or persisted (or
// closed, in noSync mode).
// Crash drops everything else, keeping a random prefix of unsynced bytes
// (a torn write). It is for tests.
type MemStore struct {
	// mu guards every field below and every memObject; no I/O happens.
	mu struct {
		sync.Mutex
		objects map[string]*memObject
		inject  Injector
		rng     *rand.Rand
		// flipRead, when above 0, is the chance that a ReadAt returns
		// its bytes with one bit flipped (bit rot the store did not catch).
		flipRead float64
		gen      int // bumped by Crash; handles from older generations fail
	}
	noSync bool
}

type memObject struct {
	data        []byte
	synced      int  // bytes durable
	durableName bool // survives a crash
	open        bool // a writer still appends
	// stale is, for an object created on a recycled one and not yet
	// closed, the old object's bytes: data is written over them from
	// offset 0, and the bytes of stale past data still show (Open) and
	// survive a crash, as do those past the torn point of a crash.
	stale []byte
}

// content is what a reader sees: the bytes written, then the stale tail.
func (o *memObject) content() []byte {
	if len(o.stale) <= len(o.data) {
		return o.data
	}
	return append(o.data[:len(o.data):len(o.data)], o.stale[len(o.data):]...)
}

var (
	_ Store    = (*MemStore)(nil)
	_ Recycler = (*MemStore)(nil)
	_ Recycler = (*memSession)(nil)
)

// NewMemStore returns an empty store. With noSync, Writer.Sync returns
// ErrSyncUnsupported, as on HDFS. seed drives the torn-write choices of Crash.
func NewMemStore(noSync bool, seed int64) *MemStore {
	s := &MemStore{noSync: noSync}
	s.mu.objects = make(map[string]*memObject)
	s.mu.rng = rand.New(rand.NewSource(seed))
	return s
}

// Clone returns an independent copy of the store: every object with its
// bytes, what of them is durable and whether its name is, but no open
// handle (objects a writer still appends to are not open in the copy) and
// no injector. seed drives the copy's Crash. Tests build a state once and
// crash copies of it.
func (s *MemStore) Clone(seed int64) *MemStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := NewMemStore(s.noSync, seed)
	for name, o := range s.mu.objects {
		co := *o
		co.data = append([]byte(nil), o.data...)
		co.stale = append([]byte(nil), o.stale...)
		co.open = false
		c.mu.objects[name] = &co
	}
	return c
}

// FlipBitsOnRead makes each later ReadAt, with probability rate, return
// its bytes with one random bit flipped, as silent damage would; the stored
// bytes stay intact. 0 turns it off.
func (s *MemStore) FlipBitsOnRead(rate float64) {
	s.mu.Lock()
	s.mu.flipRead = rate
	s.mu.Unlock()
}

// SetInjector installs (or with nil removes) a fault injector.
func (s *MemStore) SetInjector(f Injector) {
	s.mu.Lock()
	s.mu.inject = f
	s.mu.Unlock()
}

// Crash simulates a power failure: unsynced bytes and names are lost (a
// random part of the unsynced bytes may survive) and every open handle fails
// from now on with ErrCrashed.
func (s *MemStore) Crash() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.gen++
	for name, o := range s.mu.objects {
		if !o.durableName {
			delete(s.mu.objects, name)
			continue
		}
		keep := o.synced
		if extra := len(o.data) - o.synced; extra > 0 {
			keep += s.mu.rng.Intn(extra + 1)
		}
		o.data = append([]byte(nil), o.data[:keep]...)
		if len(o.stale) > keep { // the old bytes were never overwritten
			o.data = append(o.data, o.stale[keep:]...)
		}
		o.synced, o.stale = len(o.data), nil
		o.open = false
	}
}

// Corrupt flips one bit of a stored object, for corruption tests.
func (s *MemStore) Corrupt(name string, off int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.mu.objects[name]
	if !ok || off < 0 || off >= int64(len(o.data)) {
		return fmt.Errorf("%w: %s at %d", ErrNotExist, name, off)
	}
	o.data[off] ^= 0x10
	return nil
}

// injectLocked asks the injector about op on name.
func (s *MemStore) injectLocked(op Op, name string) error {
	if s.mu.inject == nil {
		return nil
	}
	return s.mu.inject(op, name)
}

// Create implements Store.
func (s *MemStore) Create(name string) (Writer, error) {
	if err := CheckName(name, false); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w, err := s.createLocked(name, nil)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return w, nil
}

// createLocked makes the new object name, showing stale (a recycled
// object's old bytes) past what is written.
func (s *MemStore) createLocked(name string, stale []byte) (*memWriter, error) {
	if err := s.injectLocked(OpCreate, name); err != nil {
		return nil, err
	}
	if _, ok := s.mu.objects[name]; ok || s.isFolderLocked(name) {
		return nil, fmt.Errorf("%w: %s", ErrExist, name)
	}
	o := &memObject{open: true, durableName: true, stale: stale}
	s.mu.objects[name] = o
	return &memWriter{s: s, name: name, o: o, gen: s.mu.gen}, nil
}

func (s *MemStore) isFolderLocked(name string) bool {
	for n := range s.mu.objects {
		if strings.HasPrefix(n, name+"/") {
			return true
		}
	}
	return false
}

// Open implements Store.
func (s *MemStore) Open(name string) (Reader, error) {
	if err := CheckName(name, false); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.injectLocked(OpOpen, name); err != nil {
		return nil, err
	}
	o, ok := s.mu.objects[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotExist, name)
	}
	c := o.content()
	return &memReader{s: s, name: name, data: c[:len(c):len(c)], gen: s.mu.gen}, nil
}

// List implements Store.
func (s *MemStore) List(dir string) ([]string, error) {
	if err := CheckName(dir, true); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.injectLocked(OpList, dir); err != nil {
		return nil, err
	}
	if _, ok := s.mu.objects[dir]; ok && dir != "" {
		return nil, fmt.Errorf("%w: %s", ErrNotFolder, dir)
	}
	prefix := dir + "/"
	if dir == "" {
		prefix = ""
	}
	seen := make(map[string]bool)
	for n := range s.mu.objects {
		if !strings.HasPrefix(n, prefix) {
			continue
		}
		rest := n[len(prefix):]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i]
		}
		seen[rest] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Remove implements Store. Folders are implicit, so removing one that is
// empty is a no-op; a non-empty one is an error.
func (s *MemStore) Remove(name string) error {
	if err := CheckName(name, false); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.injectLocked(OpRemove, name); err != nil {
		return err
	}
	if _, ok := s.mu.objects[name]; !ok {
		if s.isFolderLocked(name) {
			return fmt.Errorf("objstore: folder %s not empty", name)
		}
		return fmt.Errorf("%w: %s", ErrNotExist, name)
	}
	delete(s.mu.objects, name)
	return nil
}

// Rename implements Store. The renamed object keeps its unsynced bytes
// unsynced, as a file system would.
func (s *MemStore) Rename(from, to string) error {
	if err := CheckName(from, false); err != nil {
		return err
	}
	if err := CheckName(to, false); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.injectLocked(OpRename, from); err != nil {
		return err
	}
	o, ok := s.mu.objects[from]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotExist, from)
	}
	delete(s.mu.objects, from)
	o.durableName = true
	s.mu.objects[to] = o
	return nil
}

// Persist implements Store.
func (s *MemStore) Persist(name string) error {
	if err := CheckName(name, false); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.injectLocked(OpPersist, name); err != nil {
		return err
	}
	o, ok := s.mu.objects[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotExist, name)
	}
	o.synced = len(o.data)
	o.durableName = true
	return nil
}

// Recycle implements Recycler.
func (s *MemStore) Recycle(name, pool string) error {
	if err := CheckName(name, false); err != nil {
		return err
	}
	to := path.Join(pool, path.Base(name))
	if err := CheckName(to, false); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.injectLocked(OpRename, name); err != nil {
		return err
	}
	o, ok := s.mu.objects[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotExist, name)
	}
	if o.open {
		return fmt.Errorf("objstore: recycle %s: still being written", name)
	}
	if _, ok := s.mu.objects[to]; ok {
		return fmt.Errorf("%w: %s", ErrExist, to)
	}
	delete(s.mu.objects, name)
	o.durableName = true
	s.mu.objects[to] = o
	return nil
}

// CreateRecycled implements Recycler: the first object of pool, in name
// order, becomes the stale bytes of the new one.
func (s *MemStore) CreateRecycled(name, pool string) (Writer, bool, error) {
	if err := CheckName(name, false); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var from string
	for n, o := range s.mu.objects {
		if path.Dir(n) == pool && !o.open && (from == "" || n < from) {
			from = n
		}
	}
	var stale []byte
	if from != "" {
		stale = s.mu.objects[from].content()
	}
	w, err := s.createLocked(name, stale)
	if err != nil {
		return nil, false, err
	}
	if from == "" {
		return w, false, nil
	}
	delete(s.mu.objects, from)
	return w, true, nil
}

type memWriter struct {
	s      *MemStore
	name   string
	o      *memObject
	gen    int
	closed bool
}

// checkLocked fails handles that outlived a crash or were closed.
func (w *memWriter) checkLocked(op Op) error {
	if w.gen != w.s.mu.gen {
		return ErrCrashed
	}
	if w.closed {
		return fmt.Errorf("objstore: %s on closed writer %s", op, w.name)
	}
	return w.s.injectLocked(op, w.name)
}

func (w *memWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if err := w.checkLocked(OpWrite); err != nil {
		return 0, err
	}
	w.o.data = append(w.o.data, p...)
	return len(p), nil
}

func (w *memWriter) Sync() error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if err := w.checkLocked(OpSync); err != nil {
		return err
	}
	if w.s.noSync {
		return ErrSyncUnsupported
	}
	w.o.synced = len(w.o.data)
	w.o.durableName = true
	return nil
}

func (w *memWriter) Close() error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if err := w.checkLocked(OpClose); err != nil {
		return err
	}
	w.closed = true
	w.o.open = false
	if w.o.stale != nil { // recycled: cut the stale tail and sync (Recycler)
		w.o.stale = nil
		w.o.synced = len(w.o.data)
	}
	if w.s.noSync { // as on HDFS: only Close is durable
		w.o.synced = len(w.o.data)
		w.o.durableName = true
	}
	return nil
}

type memReader struct {
	s    *MemStore
	name string
	data []byte
	gen  int
}

func (r *memReader) ReadAt(p []byte, off int64) (int, error) {
	r.s.mu.Lock()
	err := r.s.injectLocked(OpReadAt, r.name)
	if err == nil && r.gen != r.s.mu.gen {
		err = ErrCrashed
	}
	r.s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("objstore: negative offset %d", off)
	}
	if off >= int64(len(r.data)) {
		return 0, io.EOF
	}
	n := copy(p, r.data[off:])
	r.s.mu.Lock()
	if n > 0 && r.s.mu.flipRead > 0 && r.s.mu.rng.Float64() < r.s.mu.flipRead {
		bit := r.s.mu.rng.Intn(8 * n)
		p[bit/8] ^= 1 << (bit % 8)
	}
	r.s.mu.Unlock()
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (r *memReader) Size() int64  { return int64(len(r.data)) }
func (r *memReader) Close() error { return nil }

// Session returns a view of the store for one simulated process: after the
// next Crash every operation through it fails with ErrCrashed, as a dead
// process does nothing more. Crash tests open volumes through a session so
// that goroutines of the "dead" process cannot touch the store afterwards.
func (s *MemStore) Session() Store {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &memSession{s: s, gen: s.mu.gen}
}

type memSession struct {
	s   *MemStore
	gen int
}

var _ Store = (*memSession)(nil)

func (m *memSession) alive() error {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	if m.gen != m.s.mu.gen {
		return ErrCrashed
	}
	return nil
}

func (m *memSession) Create(name string) (Writer, error) {
	if err := m.alive(); err != nil {
		return nil, err
	}
	return m.s.Create(name)
}

func (m *memSession) Open(name string) (Reader, error) {
	if err := m.alive(); err != nil {
		return nil, err
	}
	return m.s.Open(name)
}

func (m *memSession) List(dir string) ([]string, error) {
	if err := m.alive(); err != nil {
		return nil, err
	}
	return m.s.List(dir)
}

func (m *memSession) Remove(name string) error {
	if err := m.alive(); err != nil {
		return err
	}
	return m.s.Remove(name)
}

func (m *memSession) Rename(from, to string) error {
	if err := m.alive(); err != nil {
		return err
	}
	return m.s.Rename(from, to)
}

func (m *memSession) Recycle(name, pool string) error {
	if err := m.alive(); err != nil {
		return err
	}
	return m.s.Recycle(name, pool)
}

func (m *memSession) CreateRecycled(name, pool string) (Writer, bool, error) {
	if err := m.alive(); err != nil {
		return nil, false, err
	}
	return m.s.CreateRecycled(name, pool)
}

func (m *memSession) Persist(name string) error {
	if err := m.alive(); err != nil {
		return err
	}
	return m.s.Persist(name)
}
