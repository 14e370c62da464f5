package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadModuleCompressed checks that compressed modules are unpacked
// before they go into the initramfs (busybox insmod may not handle xz).
func TestReadModuleCompressed(t *testing.T) {
	Begin(t, "xz", "gzip")
	want := bytes.Repeat([]byte("\x7fELF module body "), 1000)
	dir := t.TempDir()
	for _, c := range []struct{ ext, tool string }{{".xz", "xz"}, {".gz", "gzip"}} {
		p := filepath.Join(dir, "m.ko")
		if err := os.WriteFile(p, want, 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, c.tool, "-f", p)
		got, err := readModule(p + c.ext)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %d bytes, want the %d original bytes", c.ext, len(got), len(want))
		}
	}
}

// TestResolveModules checks the load order derived from the host kernel's
// modules.dep: every module after its dependencies, ext4 and virtio_blk in.
func TestResolveModules(t *testing.T) {
	Begin(t)
	k, err := FindKernel()
	if err != nil {
		t.Fatal(err)
	}
	order, err := resolveModules(k)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	var names []string
	for i, m := range order {
		pos[m.name] = i
		names = append(names, m.name)
	}
	t.Logf("kernel %s: insmod order %s", k.Version, strings.Join(names, " "))
	before := [][2]string{{"virtio_ring", "virtio"}, {"virtio", "virtio_blk"}, {"virtio", "virtio_pci"},
		{"jbd2", "ext4"}, {"mbcache", "ext4"}, {"crc16", "ext4"}}
	for _, b := range before {
		i, ok1 := pos[b[0]]
		j, ok2 := pos[b[1]]
		if ok1 && ok2 && i > j {
			t.Errorf("%s loads after %s", b[0], b[1])
		}
	}
	for _, m := range []string{"virtio_blk", "ext4"} {
		if _, ok := pos[m]; !ok && !builtinModule(k, m) {
			t.Errorf("%s missing from the load order", m)
		}
	}
	if out, err := exec.Command("modinfo", "-k", k.Version, "-F", "depends", "ext4").Output(); err == nil {
		for _, d := range strings.Split(strings.TrimSpace(string(out)), ",") {
			if d != "" && pos[strings.ReplaceAll(d, "-", "_")] > pos["ext4"] {
				t.Errorf("ext4 dependency %s loads after ext4", d)
			}
		}
	}
}

func builtinModule(k Kernel, name string) bool {
	b, _ := os.ReadFile(filepath.Join(k.ModDir, "modules.builtin"))
	return strings.Contains(string(b), "/"+name+".ko")
}
