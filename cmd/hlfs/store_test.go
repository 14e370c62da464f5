package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
)

func TestOpenStore(t *testing.T) {
	base := t.TempDir()
	t.Chdir(base)
	abs := filepath.Join(base, "abs")
	for _, tc := range []struct {
		uri, root string
	}{
		{"file://" + abs, abs},
		{"file://./rel", filepath.Join(base, "rel")},
		{"file://rel2", filepath.Join(base, "rel2")},
		{"file://rel3/sub", filepath.Join(base, "rel3", "sub")},
		{"FILE://./upper", filepath.Join(base, "upper")},
		{"plain", filepath.Join(base, "plain")},
		{"./dot/plain", filepath.Join(base, "dot", "plain")},
		{abs + "2", abs + "2"},
	} {
		if _, err := openStore(tc.uri); !errors.Is(err, objstore.ErrNoStore) {
			t.Errorf("openStore(%q) of a missing store: %v, want ErrNoStore", tc.uri, err)
		}
		if _, err := os.Stat(tc.root); !os.IsNotExist(err) {
			t.Errorf("openStore(%q) created %s", tc.uri, tc.root)
		}
		if _, err := createStore(tc.uri); err != nil {
			t.Errorf("createStore(%q): %v", tc.uri, err)
			continue
		}
		st, err := openStore(tc.uri)
		if err != nil {
			t.Errorf("openStore(%q): %v", tc.uri, err)
			continue
		}
		ds, ok := st.(*objstore.DirStore)
		if !ok {
			t.Errorf("openStore(%q) = %T", tc.uri, st)
			continue
		}
		// The working directory may be reached through a symlink.
		want, _ := filepath.EvalSymlinks(tc.root)
		got, _ := filepath.EvalSymlinks(ds.Root())
		if got != want {
			t.Errorf("openStore(%q) root %s, want %s", tc.uri, ds.Root(), tc.root)
		}
	}
}

func TestOpenStoreErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ uri, msg string }{
		{"", "empty store URI"},
		{"  ", "empty store URI"},
		{"hdfs://127.0.0.1:1/hlfs", "namenode unreachable"},
		{"s3://bucket/x", `unsupported scheme "s3"`},
		{"file://", "no path after file://"},
		{"file://" + file, "not a directory"},
	} {
		_, err := openStore(tc.uri)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("openStore(%q) = %v, want an error containing %q", tc.uri, err, tc.msg)
		}
	}
}

// A mistyped --store is an error naming it, and nothing is created there;
// only init and create make a store (issue 10, item 3).
func TestMissingStoreIsNotCreated(t *testing.T) {
	typo := filepath.Join(t.TempDir(), "typo")
	for _, args := range [][]string{
		{"ls"}, {"info", "v"}, {"rm", "v"}, {"fsck", "v"}, {"serve", "--listen", "127.0.0.1:0"},
		{"import", "-", "v"}, {"import", os.DevNull, "v"}, {"export", "v", filepath.Join(t.TempDir(), "out")}, {"snapshot", "ls", "v"},
		{"gc", "v"}, {"du", "v"}, {"resize", "v", "--size", "1M"}, {"clone", "v@s", "w"}, {"flatten", "v"},
	} {
		wantError(t, hlfs(t, "file://"+typo, args...), 1, "store file://"+typo+" does not exist", "hlfs init")
		wantError(t, hlfs(t, typo, args...), 1, "store "+typo+" does not exist")
		if _, err := os.Stat(typo); !os.IsNotExist(err) {
			t.Fatalf("hlfs %v on a missing store created it", args)
		}
	}
}

// The store errors reach the user as one line.
func TestStoreErrorsOnCommandLine(t *testing.T) {
	wantError(t, hlfs(t, "hdfs://127.0.0.1:1/x", "ls"), 1, "hdfs://127.0.0.1:1/x", "namenode unreachable")
	wantError(t, hlfs(t, "s3://b", "info", "v"), 1, `unsupported scheme "s3"`)
}
