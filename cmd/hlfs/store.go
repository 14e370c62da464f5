package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hlfs/hlfs/hdfsbackend"
	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/internal/objstore"
)

// openStore opens the existing store named by uri:
//
//	file:///abs/path    a directory
//	file://./rel/path   a directory relative to the working directory
//	file://rel/path     the same
//	/abs or rel/path    a plain path is a directory too
//	hdfs://host:port/p  HDFS ($HADOOP_CONF_DIR, $HADOOP_USER_NAME apply)
//
// A missing store is an error naming it: stores are made explicitly, by
// createStore (hlfs init, hlfs create), never by a mistyped --store.
func openStore(uri string) (objstore.Store, error) {
	return storeAt(uri, false)
}

// createStore opens the store named by uri, creating its directory or
// HDFS folder when missing.
func createStore(uri string) (objstore.Store, error) {
	return storeAt(uri, true)
}

func storeAt(uri string, create bool) (objstore.Store, error) {
	if strings.TrimSpace(uri) == "" {
		return nil, errors.New("empty store URI: want file:///path or a directory path")
	}
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok || strings.ContainsAny(scheme, "/.") {
		return openDirStore(uri, uri, create)
	}
	switch strings.ToLower(scheme) {
	case "file":
		if rest == "" {
			return nil, fmt.Errorf("store %s: no path after file://", uri)
		}
		return openDirStore(uri, rest, create)
	case "hdfs":
		st, err := hdfsbackend.Open(uri, hdfsbackend.Options{Create: create})
		if errors.Is(err, objstore.ErrNoStore) {
			return nil, noStoreError(uri)
		}
		if err != nil {
			return nil, errors.New(cliutil.Message(err)) // names the store and the reason
		}
		return st, nil
	}
	return nil, fmt.Errorf("store %s: unsupported scheme %q: want file://, hdfs:// or a directory path", uri, scheme)
}

// openDirStore opens the directory dir as a store, creating it if create;
// uri names it in errors.
func openDirStore(uri, dir string, create bool) (objstore.Store, error) {
	open := objstore.OpenDirStore
	if create {
		open = objstore.NewDirStore
	}
	st, err := open(dir)
	if errors.Is(err, objstore.ErrNoStore) {
		return nil, noStoreError(uri)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open store %s: %w", uri, err)
	}
	return st, nil
}

// noStoreError says that the store uri does not exist and how one is made;
// it wraps objstore.ErrNoStore.
func noStoreError(uri string) error { return noStore{uri} }

type noStore struct{ uri string }

func (e noStore) Error() string {
	return fmt.Sprintf("store %s does not exist (check --store or HLFS_STORE; 'hlfs init' or the first 'hlfs create' makes a store)", e.uri)
}

func (e noStore) Unwrap() error { return objstore.ErrNoStore }
