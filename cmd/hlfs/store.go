package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hlfs/hlfs/hdfsbackend"
	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/internal/objstore"
)

// openStore opens the store named by uri:
//
//	file:///abs/path    a directory (created if missing)
//	file://./rel/path   a directory relative to the working directory
//	file://rel/path     the same
//	/abs or rel/path    a plain path is a directory too
//	hdfs://host:port/p  HDFS ($HADOOP_CONF_DIR, $HADOOP_USER_NAME apply)
func openStore(uri string) (objstore.Store, error) {
	if strings.TrimSpace(uri) == "" {
		return nil, errors.New("empty store URI: want file:///path or a directory path")
	}
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok || strings.ContainsAny(scheme, "/.") {
		return openDirStore(uri, uri)
	}
	switch strings.ToLower(scheme) {
	case "file":
		if rest == "" {
			return nil, fmt.Errorf("store %s: no path after file://", uri)
		}
		return openDirStore(uri, rest)
	case "hdfs":
		st, err := hdfsbackend.Open(uri, hdfsbackend.Options{})
		if err != nil {
			return nil, errors.New(cliutil.Message(err)) // names the store and the reason
		}
		return st, nil
	}
	return nil, fmt.Errorf("store %s: unsupported scheme %q: want file://, hdfs:// or a directory path", uri, scheme)
}

// openDirStore opens the directory dir as a store; uri names it in errors.
func openDirStore(uri, dir string) (objstore.Store, error) {
	st, err := objstore.NewDirStore(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot open store %s: %w", uri, err)
	}
	return st, nil
}
