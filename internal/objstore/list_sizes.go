package objstore

import (
	"errors"
	"path"
)

// SizeLister is implemented by stores that list a folder's objects with
// their sizes in one request (HDFS returns sizes with the names; a local
// directory's are one stat each, without opening anything).
type SizeLister interface {
	// ListSizes returns the size of every object directly inside folder dir
	// (folders are left out). A missing folder lists as empty; an object
	// lists as ErrNotFolder. The size of an object still being written is
	// what Open would report.
	ListSizes(dir string) (map[string]int64, error)
}

// ListSizes returns the sizes of the objects directly inside dir: in one
// request on a SizeLister, else by listing dir and opening each entry
// (entries removed meanwhile, and folders, are left out).
func ListSizes(st Store, dir string) (map[string]int64, error) {
	if sl, ok := st.(SizeLister); ok {
		return sl.ListSizes(dir)
	}
	names, err := st.List(dir)
	if err != nil {
		return nil, err
	}
	sizes := make(map[string]int64, len(names))
	for _, n := range names {
		r, err := st.Open(path.Join(dir, n))
		if errors.Is(err, ErrNotExist) {
			continue // removed meanwhile, or a folder
		}
		if err != nil {
			return nil, err
		}
		sizes[n] = r.Size()
		_ = r.Close()
	}
	return sizes, nil
}

// Local is implemented by stores whose requests are system calls on this
// host (DirStore): reading many small objects costs little there, so
// callers may check a cache against the objects themselves.
type Local interface {
	// Local reports whether the store is local.
	Local() bool
}
