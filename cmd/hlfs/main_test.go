package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/lfs"
)

// result is what one run of the command line produced.
type result struct {
	code           int
	stdout, stderr string
}

// testStore returns the URI of a new store in a temporary directory and the
// directory.
func testStore(t *testing.T) (uri, dir string) {
	t.Helper()
	dir = t.TempDir()
	return "file://" + dir, dir
}

// hlfs runs the command line in-process with --store store.
func hlfs(t *testing.T, store string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"--store", store}, args...), &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// mustHLFS runs the command line and fails the test unless it succeeds.
func mustHLFS(t *testing.T, store string, args ...string) string {
	t.Helper()
	r := hlfs(t, store, args...)
	if r.code != 0 {
		t.Fatalf("hlfs %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// wantError checks that r is a failure with exit code code and exactly one
// line "hlfs: ..." on stderr containing every one of substrs.
func wantError(t *testing.T, r result, code int, substrs ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d (stderr %q)", r.code, code, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "hlfs: ") || !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr is not one line \"hlfs: ...\": %q", r.stderr)
	}
	for _, s := range substrs {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr %q does not contain %q", r.stderr, s)
		}
	}
	if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
		t.Errorf("stderr %q looks like a crash", r.stderr)
	}
	msg := strings.TrimPrefix(r.stderr, "hlfs: ")
	for _, prefix := range []string{"lfs: ", "objstore: ", "nbdserver: "} {
		if strings.HasPrefix(msg, prefix) {
			t.Errorf("stderr %q keeps the package prefix %q", r.stderr, prefix)
		}
	}
}

// dirStore opens the store directory for direct checks.
func dirStore(t *testing.T, dir string) objstore.Store {
	t.Helper()
	st, err := objstore.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// statVolume returns lfs's view of a volume.
func statVolume(t *testing.T, dir, name string) lfs.Info {
	t.Helper()
	info, err := lfs.Stat(dirStore(t, dir), name)
	if err != nil {
		t.Fatalf("lfs.Stat(%s): %v", name, err)
	}
	return info
}

// syncBuffer is a bytes.Buffer safe for a writer and a concurrent reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestBareCommandPrintsUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(nil, &stdout, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if stdout.Len() != 0 || !strings.Contains(stderr.String(), "Usage: hlfs") {
		t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
}

func TestGlobalHelpFlag(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Errorf("%v: exit %d", args, code)
		}
		for _, cmd := range commands {
			if !strings.Contains(stdout.String(), "  "+cmd.name+" ") {
				t.Errorf("%v: usage does not list %s:\n%s", args, cmd.name, stdout.String())
			}
		}
		if stderr.Len() != 0 {
			t.Errorf("%v: stderr %q", args, stderr.String())
		}
	}
}

func TestUnknownCommandAndFlags(t *testing.T) {
	store, _ := testStore(t)
	wantError(t, hlfs(t, store, "frobnicate"), 2, `unknown command "frobnicate"`, "hlfs help")
	var stdout, stderr bytes.Buffer
	code := run([]string{"--nope", "ls"}, &stdout, &stderr)
	wantError(t, result{code, stdout.String(), stderr.String()}, 2, "unknown flag --nope")
	wantError(t, hlfs(t, store, "ls", "--nope"), 2, "ls: unknown flag --nope", "hlfs help ls")
	wantError(t, hlfs(t, store, "create", "v", "--size"), 2, "missing value for --size")
}

// --store may follow the command name, and HLFS_STORE is the default.
func TestStoreFlagPlacementAndEnv(t *testing.T) {
	store, dir := testStore(t)
	var out, errb bytes.Buffer
	if code := run([]string{"create", "v1", "--size", "1M", "--store", store}, &out, &errb); code != 0 {
		t.Fatalf("create with --store after the command: exit %d: %s", code, errb.String())
	}
	statVolume(t, dir, "v1")

	c := newCLI(context.Background(), &out, &errb, func(k string) string {
		if k == "HLFS_STORE" {
			return store
		}
		return ""
	})
	out.Reset()
	if code := c.main([]string{"ls"}); code != 0 || !strings.Contains(out.String(), "v1") {
		t.Fatalf("ls with HLFS_STORE: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	// The flag beats the environment.
	other, _ := testStore(t)
	out.Reset()
	if code := c.main([]string{"--store", other, "ls"}); code != 0 || strings.Contains(out.String(), "v1") {
		t.Fatalf("ls --store OTHER: exit %d, stdout %q", code, out.String())
	}
}

func TestDefaultStore(t *testing.T) {
	t.Chdir(t.TempDir())
	var out, errb bytes.Buffer
	c := newCLI(context.Background(), &out, &errb, func(string) string { return "" })
	if code := c.main([]string{"create", "v", "--size", "1M"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join("hlfs-data", "v", "super")); err != nil {
		t.Fatalf("default store ./hlfs-data not used: %v", err)
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		pos      []string
		size     string
		compress bool
	}{
		{[]string{"v", "--size", "1G"}, []string{"v"}, "1G", false},
		{[]string{"--size=1G", "v", "--compress"}, []string{"v"}, "1G", true},
		{[]string{"a", "b", "-size", "2M", "c"}, []string{"a", "b", "c"}, "2M", false},
		{[]string{"--size", "1G", "--", "--compress", "x"}, []string{"--compress", "x"}, "1G", false},
		{[]string{"a", "--", "-b"}, []string{"a", "-b"}, "", false},
		{nil, nil, "", false},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		size := fs.String("size", "", "")
		compress := fs.Bool("compress", false, "")
		pos, err := parseInterspersed(fs, tc.args)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if strings.Join(pos, "|") != strings.Join(tc.pos, "|") || *size != tc.size || *compress != tc.compress {
			t.Errorf("%q: pos %q size %q compress %v", tc.args, pos, *size, *compress)
		}
	}
}

func TestFlagError(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"flag provided but not defined: -x", "unknown flag --x"},
		{"flag needs an argument: -size", "missing value for --size"},
		{`invalid boolean value "x" for -json: parse error`, `invalid boolean value "x" for -json: parse error`},
		{`invalid value "x" for flag -n: bad`, `invalid value "x" for --n: bad`},
	} {
		if got := flagError(errors.New(tc.in)); got != tc.want {
			t.Errorf("flagError(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A panic deep inside a command becomes one line, not a stack trace.
func TestPanicIsOneLine(t *testing.T) {
	boom := &command{name: "boom", flags: func(*flag.FlagSet) func(*cli, []string) error {
		return func(*cli, []string) error { panic("kaboom") }
	}}
	commands = append(commands, boom)
	defer func() { commands = commands[:len(commands)-1] }()
	store, _ := testStore(t)
	r := hlfs(t, store, "boom")
	if r.code != 1 || r.stderr != "hlfs: internal error: kaboom (please report this bug)\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}
