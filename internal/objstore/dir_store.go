package objstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// DirStore keeps objects as files under a root directory on a local file
// system, calling fsync on files and on the folders whose entries changed
// wherever durability needs it.
type DirStore struct {
	root string
}

var (
	_ Store      = (*DirStore)(nil)
	_ SizeLister = (*DirStore)(nil)
	_ Local      = (*DirStore)(nil)
)

// NewDirStore returns a store rooted at dir, creating dir (and its
// parents) if needed: it is how a store is made. Commands that only use a
// store open it with OpenDirStore.
func NewDirStore(dir string) (*DirStore, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("objstore: cannot use %s: %w", abs, err)
	}
	return OpenDirStore(abs)
}

// OpenDirStore returns the store rooted at the existing directory dir. It
// never creates dir: a missing one is an error wrapping ErrNoStore.
func OpenDirStore(dir string) (*DirStore, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", ErrNoStore, abs)
	}
	if err != nil {
		return nil, fmt.Errorf("objstore: cannot use %s: %w", abs, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("objstore: %s is not a directory", abs)
	}
	return &DirStore{root: abs}, nil
}

// Local implements Local: a request is a system call.
func (s *DirStore) Local() bool { return true }

// Root returns the absolute directory holding the objects.
func (s *DirStore) Root() string { return s.root }

func (s *DirStore) path(name string, allowRoot bool) (string, error) {
	if err := CheckName(name, allowRoot); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(name)), nil
}

// Create implements Store.
func (s *DirStore) Create(name string) (Writer, error) {
	p, err := s.path(name, false)
	if err != nil {
		return nil, err
	}
	if err := s.mkdirAll(filepath.Dir(p)); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, mapErr(err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		f.Close()
		return nil, err
	}
	return &dirWriter{f: f}, nil
}

// mkdirAll creates dir and its missing parents, making each new entry durable.
func (s *DirStore) mkdirAll(dir string) error {
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return nil
	}
	if dir == s.root || len(dir) < len(s.root) {
		return os.MkdirAll(dir, 0o755)
	}
	if err := s.mkdirAll(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// Open implements Store.
func (s *DirStore) Open(name string) (Reader, error) {
	p, err := s.path(name, false)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, mapErr(err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is a folder", ErrNotExist, name)
	}
	return &dirReader{File: f, size: st.Size()}, nil
}

// readDir reads folder dir; found is false when it does not exist, and
// an object there is ErrNotFolder.
func (s *DirStore) readDir(dir string) (entries []os.DirEntry, found bool, err error) {
	p, err := s.path(dir, true)
	if err != nil {
		return nil, false, err
	}
	entries, err = os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if errors.Is(err, syscall.ENOTDIR) {
		return nil, false, fmt.Errorf("%w: %s", ErrNotFolder, dir)
	}
	if err != nil {
		return nil, false, err
	}
	return entries, true, nil
}

// List implements Store.
func (s *DirStore) List(dir string) ([]string, error) {
	entries, found, err := s.readDir(dir)
	if err != nil || !found {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// ListSizes implements SizeLister: one stat per entry, no open.
func (s *DirStore) ListSizes(dir string) (map[string]int64, error) {
	entries, found, err := s.readDir(dir)
	if err != nil || !found {
		return nil, err
	}
	sizes := make(map[string]int64, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		sizes[e.Name()] = fi.Size()
	}
	return sizes, nil
}

// Remove implements Store.
func (s *DirStore) Remove(name string) error {
	p, err := s.path(name, false)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return mapErr(err)
	}
	return syncDir(filepath.Dir(p))
}

// Rename implements Store.
func (s *DirStore) Rename(from, to string) error {
	pf, err := s.path(from, false)
	if err != nil {
		return err
	}
	pt, err := s.path(to, false)
	if err != nil {
		return err
	}
	if _, err := os.Stat(pf); err != nil {
		return mapErr(err)
	}
	if err := s.mkdirAll(filepath.Dir(pt)); err != nil {
		return err
	}
	if err := os.Rename(pf, pt); err != nil {
		return mapErr(err)
	}
	if err := syncDir(filepath.Dir(pt)); err != nil {
		return err
	}
	if filepath.Dir(pf) != filepath.Dir(pt) {
		return syncDir(filepath.Dir(pf))
	}
	return nil
}

// Persist implements Store: fsync through a read-only descriptor.
func (s *DirStore) Persist(name string) error {
	p, err := s.path(name, false)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return mapErr(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}

func mapErr(err error) error {
	switch {
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%w: %v", ErrExist, err)
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		// ENOTDIR: a folder on the path is a file, so the object is absent.
		return fmt.Errorf("%w: %v", ErrNotExist, err)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("objstore: fsync %s: %w", dir, err)
	}
	return nil
}

type dirWriter struct {
	f *os.File
	// off is the bytes written; unsent the bytes since the last
	// write-behind (writeBehind).
	off, unsent int64
}

// writeBehind is how many written bytes start their write-back to the
// device (sync_file_range SYNC_FILE_RANGE_WRITE: asynchronous, no
// durability promise): a later Sync then finds little left to write, and a
// writer that syncs now and then (checkpoints) keeps the device busy
// evenly instead of in bursts.
const writeBehind = 8 << 20

func (w *dirWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	w.unsent += int64(n)
	if w.unsent >= writeBehind {
		_ = syscall.SyncFileRange(int(w.f.Fd()), w.off-w.unsent, w.unsent, 2 /* SYNC_FILE_RANGE_WRITE */)
		w.unsent = 0
	}
	return n, err
}

// Sync uses fdatasync: the file's length is data for fdatasync's purposes,
// so appended bytes are covered; Create already made the name durable.
func (w *dirWriter) Sync() error {
	if err := syscall.Fdatasync(int(w.f.Fd())); err != nil {
		return fmt.Errorf("objstore: fdatasync %s: %w", w.f.Name(), err)
	}
	return nil
}

// Close closes the file without fsync; see Store.Persist and CloseDurably.
func (w *dirWriter) Close() error { return w.f.Close() }

type dirReader struct {
	*os.File
	size int64
}

func (r *dirReader) Size() int64 { return r.size }
