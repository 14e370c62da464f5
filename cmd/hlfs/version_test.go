package main

import (
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	store, _ := testStore(t)
	out := mustHLFS(t, store, "version")
	if !strings.HasPrefix(out, "hlfs ") || !strings.Contains(out, runtime.Version()) ||
		!strings.HasSuffix(out, runtime.GOOS+"/"+runtime.GOARCH+"\n") {
		t.Errorf("version %q", out)
	}
	old := version
	version = "v1.2.3"
	defer func() { version = old }()
	if out := mustHLFS(t, store, "version"); !strings.HasPrefix(out, "hlfs v1.2.3 ") {
		t.Errorf("version with -X main.version: %q", out)
	}
	wantError(t, hlfs(t, store, "version", "extra"), 2, `unexpected argument "extra"`)
}
