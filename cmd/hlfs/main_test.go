package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
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
		for _, cmd := range commandTree(t) {
			if cmd.Parent().HasParent() {
				continue // a subcommand
			}
			if !strings.Contains(stdout.String(), "  "+cmd.Name()+" ") {
				t.Errorf("%v: usage does not list %s:\n%s", args, cmd.Name(), stdout.String())
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

// probe runs args with a command "probe" added to hlfs, which has the
// flags --size and --compress and records what it was run with.
func probe(t *testing.T, args ...string) (r result, pos []string, size string, compress bool) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := newCLI(context.Background(), &stdout, &stderr, func(string) string { return "" })
	root := c.rootCmd()
	cmd := &cobra.Command{Use: "probe", Args: cobra.ArbitraryArgs}
	cmd.Flags().StringVar(&size, "size", "", "")
	cmd.Flags().BoolVar(&compress, "compress", false, "")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		pos = args
		return nil
	}
	root.AddCommand(cmd)
	code := c.execute(root, append([]string{"probe"}, args...))
	return result{code, stdout.String(), stderr.String()}, pos, size, compress
}

// Flags may come anywhere among the arguments, with one dash or two;
// everything after "--" is an argument.
func TestFlagsAnywhere(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		pos      []string
		size     string
		compress bool
	}{
		{[]string{"v", "--size", "1G"}, []string{"v"}, "1G", false},
		{[]string{"--size=1G", "v", "--compress"}, []string{"v"}, "1G", true},
		{[]string{"a", "b", "-size", "2M", "c"}, []string{"a", "b", "c"}, "2M", false},
		{[]string{"-compress", "a", "-size=2M"}, []string{"a"}, "2M", true},
		{[]string{"--size", "-1G", "a"}, []string{"a"}, "-1G", false},
		{[]string{"-size", "-compress", "a"}, []string{"a"}, "-compress", false},
		{[]string{"--size", "1G", "--", "--compress", "x"}, []string{"--compress", "x"}, "1G", false},
		{[]string{"a", "--", "-b"}, []string{"a", "-b"}, "", false},
		{[]string{"-", "--compress=false"}, []string{"-"}, "", false},
		{nil, nil, "", false},
	} {
		r, pos, size, compress := probe(t, tc.args...)
		if r.code != 0 || r.stdout != "" || r.stderr != "" {
			t.Errorf("%q: exit %d stdout %q stderr %q", tc.args, r.code, r.stdout, r.stderr)
		}
		if strings.Join(pos, "|") != strings.Join(tc.pos, "|") || size != tc.size || compress != tc.compress {
			t.Errorf("%q: pos %q size %q compress %v", tc.args, pos, size, compress)
		}
	}
}

// The command lines the Makefile, the README, e2e/ and bench/ run parse
// to the command, flags and arguments they mean; so do the single-dash
// forms of Go's flag package, which hlfs took before cobra.
func TestCallerForms(t *testing.T) {
	const s = "file:///tmp/st"
	for _, tc := range []struct {
		args  []string
		cmd   string            // the command run
		flags map[string]string // the flags set, as their values print
		pos   []string
	}{
		// Makefile (run), README.
		{[]string{"--store", "file://./hlfs-data", "info", "demo"}, "info", map[string]string{"store": "file://./hlfs-data"}, []string{"demo"}},
		{[]string{"--store", s, "create", "demo", "--size", "1G"}, "create", map[string]string{"size": "1G"}, []string{"demo"}},
		{[]string{"--store", s, "serve", "--listen", "127.0.0.1:10809", "demo"}, "serve", map[string]string{"listen": "127.0.0.1:10809"}, []string{"demo"}},
		{[]string{"--store", "hdfs://127.0.0.1:9000/hlfs", "create", "vm1", "--size", "20G", "--replication", "2"}, "create",
			map[string]string{"store": "hdfs://127.0.0.1:9000/hlfs", "size": "20G", "replication": "2"}, []string{"vm1"}},
		{[]string{"resize", "vm1", "--size", "2G", "--allow-shrink"}, "resize", map[string]string{"size": "2G", "allow-shrink": "true"}, []string{"vm1"}},
		{[]string{"gc", "vm1", "--max-utilization", "0.5", "--rate", "64M", "--json"}, "gc",
			map[string]string{"max-utilization": "0.5", "rate": "64M", "json": "true"}, []string{"vm1"}},
		{[]string{"serve", "--socket", "/tmp/h.sock", "--no-gc", "--lease", "30s"}, "serve",
			map[string]string{"socket": "/tmp/h.sock", "no-gc": "true", "lease": "30s"}, nil},
		{[]string{"ls", "--json"}, "ls", map[string]string{"json": "true"}, nil},
		{[]string{"import", "disk.img", "vm1"}, "import", nil, []string{"disk.img", "vm1"}},
		{[]string{"export", "vm1", "disk.img"}, "export", nil, []string{"vm1", "disk.img"}},
		{[]string{"snapshot", "ls", "vm1", "--tree"}, "snapshot ls", map[string]string{"tree": "true"}, []string{"vm1"}},
		// e2e/server.go and its tests.
		{[]string{"--store", s, "create", "vm1", "--size", "64M", "--replication", "2"}, "create", map[string]string{"size": "64M", "replication": "2"}, []string{"vm1"}},
		{[]string{"--store", s, "serve", "--listen", "127.0.0.1:0", "--admin-socket", "/tmp/a.sock",
			"--gc-interval", "50ms", "--gc-trigger", "0.05", "--gc-rate", "0", "vm1", "vm1@s1"}, "serve",
			map[string]string{"admin-socket": "/tmp/a.sock", "gc-interval": "50ms", "gc-trigger": "0.05", "gc-rate": "0"}, []string{"vm1", "vm1@s1"}},
		{[]string{"--store", s, "serve", "--listen", "127.0.0.1:0", "--admin-socket", "none", "--journal", "/tmp/j", "--lease", "3s", "vm1"}, "serve",
			map[string]string{"admin-socket": "none", "journal": "/tmp/j", "lease": "3s"}, []string{"vm1"}},
		{[]string{"--store", s, "fsck", "vm1"}, "fsck", nil, []string{"vm1"}},
		{[]string{"--store", s, "gc", "vm1"}, "gc", nil, []string{"vm1"}},
		{[]string{"--store", s, "du", "vm1", "--json"}, "du", map[string]string{"json": "true"}, []string{"vm1"}},
		{[]string{"--store", s, "info", "vm1", "--json"}, "info", map[string]string{"json": "true"}, []string{"vm1"}},
		{[]string{"--store", s, "snapshot", "ls", "vm1", "--json"}, "snapshot ls", map[string]string{"json": "true"}, []string{"vm1"}},
		{[]string{"--store", s, "snapshot", "create", "vm1@s1"}, "snapshot create", nil, []string{"vm1@s1"}},
		{[]string{"--store", s, "snapshot", "rollback", "vm1@s1"}, "snapshot rollback", nil, []string{"vm1@s1"}},
		{[]string{"--store", s, "snapshot", "rm", "vm1@s1"}, "snapshot rm", nil, []string{"vm1@s1"}},
		{[]string{"--store", s, "clone", "vm1@s1", "c1"}, "clone", nil, []string{"vm1@s1", "c1"}},
		{[]string{"--store", s, "flatten", "c1"}, "flatten", nil, []string{"c1"}},
		// bench/bench.py, gc.py, snapshots.py, hdfs.py.
		{[]string{"--store", s, "create", "vol", "--size", "1G", "--compress"}, "create", map[string]string{"size": "1G", "compress": "true"}, []string{"vol"}},
		{[]string{"--store", s, "serve", "--listen", "127.0.0.1:10810", "--admin-socket", "/tmp/a.sock", "--gc-rate", "0", "vol"}, "serve",
			map[string]string{"listen": "127.0.0.1:10810", "gc-rate": "0"}, []string{"vol"}},
		{[]string{"--store", s, "serve", "--listen", "127.0.0.1:10810", "--admin-socket", "none", "--journal", "/tmp/j"}, "serve",
			map[string]string{"journal": "/tmp/j"}, nil},
		{[]string{"version"}, "version", nil, nil},
		// README (backup and replication), e2e/backup_test.go, bench/backup.py.
		{[]string{"diff", "vm1@mon", "vm1@tue"}, "diff", nil, []string{"vm1@mon", "vm1@tue"}},
		{[]string{"diff", "vm1@s1", "--json"}, "diff", map[string]string{"json": "true"}, []string{"vm1@s1"}},
		{[]string{"export-diff", "vm1@tue", "--from-snap", "mon", "-"}, "export-diff", map[string]string{"from-snap": "mon"}, []string{"vm1@tue", "-"}},
		{[]string{"export-diff", "vm1@s1", "--format", "1", "out.diff"}, "export-diff", map[string]string{"format": "1"}, []string{"vm1@s1", "out.diff"}},
		{[]string{"--store", "hdfs://nn:9000/dr", "import-diff", "-", "vm1"}, "import-diff", map[string]string{"store": "hdfs://nn:9000/dr"}, []string{"-", "vm1"}},
		{[]string{"export", "vm1@s1", "out.raw"}, "export", nil, []string{"vm1@s1", "out.raw"}},
		// Go's flag package: one dash, "=" or not, anywhere.
		{[]string{"-store", s, "ls", "-json"}, "ls", map[string]string{"store": s, "json": "true"}, nil},
		{[]string{"-store=" + s, "create", "v", "-size=1G", "-block-size", "64K", "-compress"}, "create",
			map[string]string{"store": s, "size": "1G", "block-size": "64K", "compress": "true"}, []string{"v"}},
		{[]string{"serve", "-listen=", "-socket", "/tmp/h.sock", "-no-gc", "-store", s}, "serve",
			map[string]string{"listen": "", "socket": "/tmp/h.sock", "no-gc": "true", "store": s}, nil},
		{[]string{"snapshot", "-store", s, "ls", "vm1", "-tree"}, "snapshot ls", map[string]string{"store": s, "tree": "true"}, []string{"vm1"}},
	} {
		c := newCLI(context.Background(), &bytes.Buffer{}, &bytes.Buffer{}, func(string) string { return "" })
		root := c.rootCmd()
		cmd, rest, err := root.Find(goFlagArgs(root, tc.args))
		if err == nil {
			err = cmd.ParseFlags(rest)
		}
		if err == nil {
			err = cmd.ValidateArgs(cmd.Flags().Args())
		}
		if err != nil || commandName(cmd) != tc.cmd {
			t.Errorf("%q: command %q, error %v; want %q", tc.args, commandName(cmd), err, tc.cmd)
			continue
		}
		for name, want := range tc.flags {
			if f := cmd.Flags().Lookup(name); f == nil || !f.Changed || f.Value.String() != want {
				t.Errorf("%q: --%s is %+v, want %q", tc.args, name, f, want)
			}
		}
		if pos := cmd.Flags().Args(); strings.Join(pos, "|") != strings.Join(tc.pos, "|") {
			t.Errorf("%q: arguments %q, want %q", tc.args, pos, tc.pos)
		}
	}
}

// The flag errors read as they did before cobra: two dashes, the command,
// where its help is, exit 2.
func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--x"}, "probe: unknown flag --x (see 'hlfs help probe')"},
		{[]string{"-x"}, "probe: unknown flag --x (see 'hlfs help probe')"},
		{[]string{"a", "-nope=1"}, "probe: unknown flag --nope (see 'hlfs help probe')"},
		{[]string{"--size"}, "probe: missing value for --size (see 'hlfs help probe')"},
		{[]string{"-size"}, "probe: missing value for --size (see 'hlfs help probe')"},
		{[]string{"--compress=x"}, `probe: invalid boolean value "x" for --compress: parse error (see 'hlfs help probe')`},
		{[]string{"---x"}, "probe: bad flag syntax: ---x (see 'hlfs help probe')"},
	} {
		r, _, _, _ := probe(t, tc.args...)
		if r.code != 2 || r.stderr != "hlfs: "+tc.want+"\n" {
			t.Errorf("%q: exit %d stderr %q, want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	store, _ := testStore(t)
	wantError(t, hlfs(t, store, "serve", "--lease", "soon"), 2, `serve: invalid value "soon" for --lease: parse error`)
	wantError(t, hlfs(t, store, "create", "v", "--size", "1G", "--replication", "99999999999999999999"), 2,
		`create: invalid value "99999999999999999999" for --replication: value out of range`)
	wantError(t, hlfs(t, store, "ls", "-store"), 2, "ls: missing value for --store")
	wantError(t, hlfs(t, store, "-nope"), 2, "unknown flag --nope (see 'hlfs help')")
}

// A panic deep inside a command becomes one line, not a stack trace.
func TestPanicIsOneLine(t *testing.T) {
	var stdout, stderr bytes.Buffer
	c := newCLI(context.Background(), &stdout, &stderr, func(string) string { return "" })
	root := c.rootCmd()
	root.AddCommand(&cobra.Command{Use: "boom", RunE: func(*cobra.Command, []string) error { panic("kaboom") }})
	code := c.execute(root, []string{"boom"})
	if code != 1 || stderr.String() != "hlfs: internal error: kaboom (please report this bug)\n" {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
