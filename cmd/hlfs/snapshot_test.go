package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/admin"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// writeVolume writes data at off into a volume nobody serves, durably.
func writeVolume(t *testing.T, dir, name string, off int64, data []byte) {
	t.Helper()
	v, err := lfs.Open(dirStore(t, dir), name, lfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WriteAt(data, off, true); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
}

// fill returns n bytes of s repeated.
func fill(s string, n int) []byte {
	return bytes.Repeat([]byte(s), n/len(s)+1)[:n]
}

func TestSnapshotGroup(t *testing.T) {
	store, _ := testStore(t)
	wantError(t, hlfs(t, store, "snapshot"), 2, "snapshot needs a subcommand: one of create, ls, rm, rollback", "'hlfs help snapshot'")
	wantError(t, hlfs(t, store, "snapshot", "frob", "vm1@s1"), 2, `unknown snapshot subcommand "frob"`, "'hlfs help snapshot'")
	wantError(t, hlfs(t, store, "snapshot", "--nope"), 2, "snapshot unknown flag --nope")
	wantError(t, hlfs(t, store, "snapshot", "create"), 2, "snapshot create: missing VOLUME@SNAPSHOT", "hlfs help snapshot create")
	wantError(t, hlfs(t, store, "snapshot", "create", "a@b", "c@d"), 2, `unexpected argument "c@d"`)
	wantError(t, hlfs(t, store, "snapshot", "ls", "--nope", "vm1"), 2, "snapshot ls: unknown flag --nope")
	wantError(t, hlfs(t, store, "help", "snapshot", "frob"), 2, `unknown snapshot subcommand "frob"`)
	wantError(t, hlfs(t, store, "help", "snapshot", "create", "x"), 2, `unexpected argument "x"`)

	// The group's help lists the subcommands, three ways.
	for _, args := range [][]string{{"help", "snapshot"}, {"snapshot", "-h"}, {"snapshot", "--help"}} {
		r := hlfs(t, store, args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: hlfs snapshot SUBCOMMAND") || r.stderr != "" {
			t.Errorf("%q: exit %d stdout %q stderr %q", args, r.code, r.stdout, r.stderr)
		}
		for _, sub := range snapshotSubcommands(t) {
			if !strings.Contains(r.stdout, "  "+sub.Use+" ") {
				t.Errorf("%q does not list %s:\n%s", args, sub.Name(), r.stdout)
			}
		}
	}
	// Every subcommand has its help page, three ways; global flags work
	// before the subcommand too.
	for _, sub := range snapshotSubcommands(t) {
		word := sub.Name()
		for _, args := range [][]string{{"help", "snapshot", word}, {"snapshot", word, "-h"}, {"snapshot", "--store", store, word, "--help"}} {
			r := hlfs(t, store, args...)
			if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: hlfs snapshot "+sub.Use+"\n") ||
				!strings.Contains(r.stdout, "--store URI") || r.stderr != "" {
				t.Errorf("%q: exit %d stdout %q stderr %q", args, r.code, r.stdout, r.stderr)
			}
		}
		if sub.Short == "" || strings.TrimSpace(sub.Long) == "" {
			t.Errorf("snapshot %s has no summary or help", word)
		}
	}
	if out := mustHLFS(t, store, "help"); !strings.Contains(out, "  snapshot ") {
		t.Errorf("hlfs help does not list snapshot:\n%s", out)
	}
}

// snapshotSubcommands returns the subcommands of "hlfs snapshot".
func snapshotSubcommands(t *testing.T) []*cobra.Command {
	t.Helper()
	var subs []*cobra.Command
	for _, cmd := range commandTree(t) {
		if cmd.Parent().Name() == "snapshot" {
			subs = append(subs, cmd)
		}
	}
	if len(subs) != 4 {
		t.Fatalf("%d snapshot subcommands, want 4", len(subs))
	}
	return subs
}

// The names in VOLUME@SNAPSHOT arguments, for every command taking one.
func TestSnapshotArgErrors(t *testing.T) {
	store, _ := testStore(t)
	mustHLFS(t, store, "create", "vm1", "--size", "1M")
	for _, cmd := range [][]string{{"snapshot", "create"}, {"snapshot", "rm"}, {"snapshot", "rollback"}, {"clone"}} {
		for _, tc := range []struct{ ref, want string }{
			{"vm1@", `invalid snapshot name "" in vm1@`},
			{"@s", `invalid volume name ""`},
			{"vm1@a/b", `invalid snapshot name "a/b" in vm1@a/b`},
			{"vm1@a@b", `invalid snapshot name "a@b"`},
			{"vm1@.s", `invalid snapshot name ".s"`},
			{"x/y@s", `invalid volume name "x/y"`},
			{"vm1", "vm1 names no snapshot: want VOLUME@SNAPSHOT"},
			{"a/b", `"a/b" is not VOLUME@SNAPSHOT`},
		} {
			args := append(append([]string{}, cmd...), tc.ref)
			if cmd[0] == "clone" {
				args = append(args, "new")
			}
			wantError(t, hlfs(t, store, args...), 1, tc.want)
		}
	}
	// A snapshot where a volume is wanted.
	for _, cmd := range [][]string{{"info"}, {"rm"}, {"fsck"}, {"flatten"}, {"snapshot", "ls"}, {"resize", "--size", "2M"}} {
		args := append(append([]string{}, cmd...), "vm1@s1")
		wantError(t, hlfs(t, store, args...), 1, "vm1@s1 is a snapshot, not a volume", "hlfs snapshot ls vm1")
	}
	wantError(t, hlfs(t, store, "info", "vm1@a/b"), 1, "invalid")
}

// callOwner's refusals: a server without an admin socket, on another host,
// or whose socket does not answer.
func TestCallOwnerErrors(t *testing.T) {
	store, _ := testStore(t)
	c := newCLI(t.Context(), &bytes.Buffer{}, &bytes.Buffer{}, func(string) string { return "" })
	c.store = store
	host, _ := os.Hostname()
	req := admin.Request{Op: admin.OpSnapshotCreate, Volume: "vm1", Snapshot: "s1"}
	since := time.Now()

	err := c.callOwner("vm1", lfs.OwnerRecord{Host: host, PID: 42, Since: since}, req, nil)
	if err == nil || !strings.Contains(err.Error(), "vm1 is in use by pid 42 on host "+host+", which has no admin socket") {
		t.Errorf("no admin socket: %v", err)
	}
	err = c.callOwner("vm1", lfs.OwnerRecord{Host: "elsewhere.example", PID: 42, Admin: "/run/x.sock"}, req, nil)
	if err == nil || !strings.Contains(err.Error(), "served by pid 42 on host elsewhere.example") ||
		!strings.Contains(err.Error(), "run this command on elsewhere.example") {
		t.Errorf("another host: %v", err)
	}
	gone := t.TempDir() + "/gone.sock"
	err = c.callOwner("vm1", lfs.OwnerRecord{Host: host, PID: 42, Admin: gone}, req, nil)
	var unreachable *unreachableError
	if !strings.Contains(err.Error(), "admin socket "+gone+" does not answer: no such file or directory") ||
		!errors.As(err, &unreachable) {
		t.Errorf("unreachable socket: %v", err)
	}
	// ^C (the command's context ending) stops the wait; the server may
	// still carry the request out.
	mute := filepath.Join(t.TempDir(), "mute.sock")
	l, err := net.Listen("unix", mute)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	c.ctx = ctx
	for _, tc := range []struct {
		req   admin.Request
		check string
	}{
		{req, "hlfs snapshot ls vm1"},
		{admin.Request{Op: admin.OpGC, Volume: "vm1"}, "hlfs du vm1"},
	} {
		err = c.callOwner("vm1", lfs.OwnerRecord{Host: host, PID: 42, Admin: mute}, tc.req, nil)
		if err == nil || errors.As(err, &unreachable) ||
			err.Error() != "interrupted: pid 42 serving vm1 may still complete the request (check with '"+tc.check+"')" {
			t.Errorf("%s interrupted: %v", tc.req.Op, err)
		}
	}
}
