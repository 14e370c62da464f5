package main

import (
	"strings"
	"testing"
)

func TestCreate(t *testing.T) {
	store, dir := testStore(t)
	out := mustHLFS(t, store, "create", "demo", "--size", "1G")
	if out != "created demo: 1 GiB, 4 KiB blocks\n" {
		t.Errorf("stdout %q", out)
	}
	info := statVolume(t, dir, "demo")
	if info.Size != 1<<30 || info.BlockSize != 4096 || info.Compress {
		t.Errorf("info %+v", info)
	}

	out = mustHLFS(t, store, "create", "--compress", "--block-size", "64KiB", "z.2_x-Y", "--size=1.5G")
	if !strings.Contains(out, "64 KiB blocks, compressed") {
		t.Errorf("stdout %q", out)
	}
	info = statVolume(t, dir, "z.2_x-Y")
	if info.Size != 3<<29 || info.BlockSize != 64<<10 || !info.Compress {
		t.Errorf("info %+v", info)
	}

	mustHLFS(t, store, "create", "small", "--size", "4096", "--block-size", "512")
	if info := statVolume(t, dir, "small"); info.Size != 4096 || info.BlockSize != 512 {
		t.Errorf("info %+v", info)
	}
	mustHLFS(t, store, "create", strings.Repeat("n", 128), "--size", "4K")
}

func TestCreateErrors(t *testing.T) {
	store, _ := testStore(t)
	mustHLFS(t, store, "create", "demo", "--size", "1M")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"create", "demo", "--size", "1M"}, 1, `volume "demo" already exists`},
		{[]string{"create", "x"}, 2, "--size is required"},
		{[]string{"create", "--size", "1G"}, 2, "missing VOLUME"},
		{[]string{"create", "a", "b", "--size", "1G"}, 2, `unexpected argument "b"`},
		{[]string{"create", "x", "--size", "abc"}, 2, `invalid size "abc"`},
		{[]string{"create", "x", "--size", "-1G"}, 2, "must be positive"},
		{[]string{"create", "x", "--size", "0"}, 2, "greater than zero"},
		{[]string{"create", "x", "--size", "10GB"}, 2, `invalid size "10GB"`},
		{[]string{"create", "x", "--size", "1000"}, 1, "size 1000 bytes is not a multiple of the block size 4 KiB"},
		{[]string{"create", "x", "--size", "1G", "--block-size", "3000"}, 1, "block size"},
		{[]string{"create", "x", "--size", "1G", "--block-size", "1M"}, 1, "block size"},
		{[]string{"create", "../x", "--size", "1G"}, 1, `invalid volume name "../x"`},
		{[]string{"create", "a/b", "--size", "1G"}, 1, `invalid volume name "a/b"`},
		{[]string{"create", "", "--size", "1G"}, 1, `invalid volume name ""`},
		{[]string{"create", ".hidden", "--size", "1G"}, 1, "invalid volume name"},
		{[]string{"create", strings.Repeat("n", 200), "--size", "1G"}, 1, "invalid volume name"},
		{[]string{"create", "demo@snap", "--size", "1G"}, 1, "is a snapshot, not a volume"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			wantError(t, hlfs(t, store, tc.args...), tc.code, tc.msg)
		})
	}
	// Nothing was created by the failures.
	if out := mustHLFS(t, store, "ls"); strings.Count(out, "\n") != 2 {
		t.Errorf("ls after failed creates:\n%s", out)
	}
}

func TestCreateHelp(t *testing.T) {
	store, _ := testStore(t)
	for _, args := range [][]string{{"create", "-h"}, {"create", "--help"}, {"help", "create"}, {"create", "v", "-h"}} {
		r := hlfs(t, store, args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: hlfs create VOLUME --size SIZE") ||
			!strings.Contains(r.stdout, "--block-size SIZE") || r.stderr != "" {
			t.Errorf("%q: exit %d stdout %q stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
}
