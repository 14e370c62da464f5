package objstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"golang.org/x/sys/unix"
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
	_ Recycler   = (*DirStore)(nil)
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

// Recycle implements Recycler: a rename that never replaces, made durable
// in both folders.
func (s *DirStore) Recycle(name, pool string) error {
	p, err := s.path(name, false)
	if err != nil {
		return err
	}
	dir, err := s.path(pool, false)
	if err != nil {
		return err
	}
	if err := s.mkdirAll(dir); err != nil {
		return err
	}
	if err := renameNoReplace(p, filepath.Join(dir, filepath.Base(p))); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}

// CreateRecycled implements Recycler. The pool's file moves to name by a
// rename that fails when name exists, so two writers still never share an
// object, and a crash leaves the file under exactly one of its names.
func (s *DirStore) CreateRecycled(name, pool string) (Writer, bool, error) {
	p, err := s.path(name, false)
	if err != nil {
		return nil, false, err
	}
	entries, _, err := s.readDir(pool)
	if err != nil {
		return nil, false, err
	}
	if len(entries) > 0 {
		if err := s.mkdirAll(filepath.Dir(p)); err != nil {
			return nil, false, err
		}
	}
	dir := filepath.Join(s.root, filepath.FromSlash(pool))
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		err := renameNoReplace(filepath.Join(dir, e.Name()), p)
		if errors.Is(err, ErrNotExist) {
			continue // another process took it
		}
		if errors.Is(err, errNoReplaceUnsupported) {
			break
		}
		if err != nil {
			return nil, false, err
		}
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err == nil {
			err = syncDir(filepath.Dir(p))
		}
		if err == nil {
			err = syncDir(dir)
		}
		if err != nil {
			if f != nil {
				f.Close()
			}
			return nil, false, err
		}
		return &dirWriter{f: f, recycled: true}, true, nil
	}
	w, err := s.Create(name)
	return w, false, err
}

// errNoReplaceUnsupported: the file system cannot rename without replacing
// (renameat2 RENAME_NOREPLACE); nothing is recycled there.
var errNoReplaceUnsupported = errors.New("objstore: rename without replacing is not supported here")

// renameNoReplace renames from to to unless to exists (ErrExist).
func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		return errNoReplaceUnsupported
	}
	return mapErr(&os.LinkError{Op: "rename", Old: from, New: to, Err: err})
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
	// recycled: the file held another object (CreateRecycled); Close cuts
	// its stale tail and syncs it.
	recycled bool
}

// writeBehind is how many written bytes start their write-back to the
// device (sync_file_range SYNC_FILE_RANGE_WRITE: asynchronous, no
// durability promise): a later Sync then finds little left to write, and a
// writer that syncs now and then (checkpoints) keeps the device busy
// evenly instead of in bursts.
const writeBehind = 8 << 20

func (w *dirWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.wrote(n)
	return n, err
}

var _ BuffersWriter = (*dirWriter)(nil)

const (
	// maxIovecs is the most buffers one writev takes (IOV_MAX on Linux).
	maxIovecs = 1024
	// writevBytes bounds the bytes of one writev (but for a single larger
	// buffer): on the project's VM, 1 MiB sequential writes ran at 609 MB/s
	// with unbounded writevs (several MiB each), 711 with 64 KiB writes,
	// and best with 256 KiB ones (bench/README.md "1M sequential writes").
	writevBytes = 256 << 10
)

// WriteBuffers implements BuffersWriter with writev, up to maxIovecs
// buffers and about writevBytes a call.
func (w *dirWriter) WriteBuffers(bufs [][]byte) error {
	fd := int(w.f.Fd())
	for len(bufs) > 0 {
		k, size := 0, 0
		for k < len(bufs) && k < maxIovecs && (k == 0 || size+len(bufs[k]) <= writevBytes) {
			size += len(bufs[k])
			k++
		}
		n, err := unix.Writev(fd, bufs[:k])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("objstore: write %s: %w", w.f.Name(), err)
		}
		w.wrote(n)
		if n == 0 && size > 0 {
			return fmt.Errorf("objstore: write %s: %w", w.f.Name(), io.ErrShortWrite)
		}
		bufs = dropWritten(bufs, n)
	}
	return nil
}

// dropWritten returns what of bufs is left after n of their bytes were
// written: whole buffers dropped, and after a short write the rest of a
// buffer first (in a new slice: bufs is the caller's).
func dropWritten(bufs [][]byte, n int) [][]byte {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	if n > 0 {
		bufs = append([][]byte{bufs[0][n:]}, bufs[1:]...)
	}
	return bufs
}

// wrote counts n written bytes and starts their write-back every
// writeBehind bytes.
func (w *dirWriter) wrote(n int) {
	w.off += int64(n)
	w.unsent += int64(n)
	if w.unsent >= writeBehind {
		_ = syscall.SyncFileRange(int(w.f.Fd()), w.off-w.unsent, w.unsent, 2 /* SYNC_FILE_RANGE_WRITE */)
		w.unsent = 0
	}
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
// A recycled file is first cut to the bytes written and synced
// (Recycler.CreateRecycled): its stale tail must be gone, durably, before
// the caller writes anything that relies on the object being complete.
func (w *dirWriter) Close() error {
	if w.recycled {
		err := w.f.Truncate(w.off)
		if err == nil {
			err = w.Sync()
		}
		if cerr := w.f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	return w.f.Close()
}

type dirReader struct {
	*os.File
	size int64
}

func (r *dirReader) Size() int64 { return r.size }
