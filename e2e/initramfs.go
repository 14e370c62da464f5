package e2e

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// recipeVersion names the initramfs layout; bump it whenever the builder's
// output changes so stale cached images are not reused.
const recipeVersion = "v1"

// guestModules are loaded in this order (after their dependencies from
// modules.dep). Optional ones are loaded when the kernel has them as modules.
var guestModules = []struct {
	name     string
	optional bool
}{
	{"virtio_ring", false},
	{"virtio", false},
	{"virtio_pci_legacy_dev", true},
	{"virtio_pci_modern_dev", true},
	{"virtio_pci", false},
	{"virtio_blk", false},
	{"crc16", false},
	// ext4 and jbd2 ask the crypto API for "crc32c", which would need a
	// usermode modprobe; load an implementation up front.
	{"crc32c_generic", false},
	{"crc32c_intel", true},
	{"mbcache", false},
	{"jbd2", false},
	{"ext4", false},
}

// Kernel is a bootable kernel image with its module tree.
type Kernel struct {
	Version string // uname -r, e.g. 6.1.0-56-amd64
	Image   string // /boot/vmlinuz-VERSION
	ModDir  string // /lib/modules/VERSION
}

// FindKernel returns the kernel named by HLFS_GUEST_KERNEL (a vmlinuz path)
// or else the newest /boot/vmlinuz-* that has a module tree.
func FindKernel() (Kernel, error) {
	var images []string
	if p := os.Getenv("HLFS_GUEST_KERNEL"); p != "" {
		images = []string{p}
	} else {
		images, _ = filepath.Glob("/boot/vmlinuz-*")
		sort.Sort(sort.Reverse(sort.StringSlice(images)))
	}
	for _, img := range images {
		ver := strings.TrimPrefix(filepath.Base(img), "vmlinuz-")
		k := Kernel{Version: ver, Image: img, ModDir: filepath.Join("/lib/modules", ver)}
		if _, err := os.Stat(filepath.Join(k.ModDir, "modules.dep")); err == nil {
			return k, nil
		}
	}
	return Kernel{}, errors.New("no kernel: need /boot/vmlinuz-VERSION with /lib/modules/VERSION/modules.dep (apt-get install linux-image-amd64, or set HLFS_GUEST_KERNEL)")
}

var (
	initramfsMu    sync.Mutex
	initramfsBuilt = map[string]string{}
)

// BuildInitramfs returns the path of an uncompressed initramfs for k,
// building it on first use and caching it under
// os.TempDir()/hlfs-guest-cache/VERSION-RECIPE/. HLFS_GUEST_REBUILD=1 forces a
// rebuild. The image holds busybox-static, k's virtio/ext4 modules,
// e2fsprogs (mke2fs, e2fsck with their shared libraries) and /init, which runs
// /hlfs/script.sh (see BootGuest).
func BuildInitramfs(k Kernel) (string, error) {
	initramfsMu.Lock()
	defer initramfsMu.Unlock()
	if p, ok := initramfsBuilt[k.Version]; ok {
		return p, nil
	}
	dir := filepath.Join(os.TempDir(), "hlfs-guest-cache", k.Version+"-"+recipeVersion)
	out := filepath.Join(dir, "initramfs.cpio")
	if _, err := os.Stat(out); err == nil && os.Getenv("HLFS_GUEST_REBUILD") != "1" {
		initramfsBuilt[k.Version] = out
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "initramfs-*.tmp")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := writeInitramfs(tmp, k); err != nil {
		tmp.Close()
		return "", fmt.Errorf("building initramfs for %s: %w", k.Version, err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	initramfsBuilt[k.Version] = out
	return out, nil
}

// initramfsImage collects the members before writing, so parent directories
// can be emitted first and exactly once.
type initramfsImage struct {
	dirs  map[string]bool
	files []func(c *cpioWriter)
}

func (im *initramfsImage) mkdirAll(p string) {
	p = strings.Trim(path.Clean(p), "/")
	if p == "" || p == "." || im.dirs[p] {
		return
	}
	im.mkdirAll(path.Dir(p))
	im.dirs[p] = true
}

func (im *initramfsImage) file(name string, perm uint32, data []byte) {
	name = strings.TrimPrefix(name, "/")
	im.mkdirAll(path.Dir(name))
	im.files = append(im.files, func(c *cpioWriter) { c.File(name, perm, data) })
}

func (im *initramfsImage) symlink(name, target string) {
	name = strings.TrimPrefix(name, "/")
	im.mkdirAll(path.Dir(name))
	im.files = append(im.files, func(c *cpioWriter) { c.Symlink(name, target) })
}

// hostFile copies a host file (following symlinks) to the same or another path.
func (im *initramfsImage) hostFile(src, dst string, perm uint32) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	im.file(dst, perm, data)
	return nil
}

func writeInitramfs(f *os.File, k Kernel) error {
	im := &initramfsImage{dirs: map[string]bool{}}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "mnt", "hlfs", "lib/modules/hlfs"} {
		im.mkdirAll(d)
	}

	bb, err := findStaticBusybox()
	if err != nil {
		return err
	}
	if err := im.hostFile(bb, "bin/busybox", 0o755); err != nil {
		return err
	}

	order, err := resolveModules(k)
	if err != nil {
		return err
	}
	var names []string
	for _, m := range order {
		data, err := readModule(filepath.Join(k.ModDir, m.path))
		if err != nil {
			return err
		}
		im.file("lib/modules/hlfs/"+m.name+".ko", 0o644, data)
		names = append(names, m.name)
	}
	im.file("etc/hlfs-modules", 0o644, []byte(strings.Join(names, "\n")+"\n"))

	libDirs, err := addE2fsprogs(im)
	if err != nil {
		return err
	}
	im.file("init", 0o755, []byte(initScript(libDirs)))

	c := newCpioWriter(f)
	dirs := make([]string, 0, len(im.dirs))
	for d := range im.dirs {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs) // parents sort before children
	for _, d := range dirs {
		c.Dir(d)
	}
	c.CharDev("dev/console", 5, 1)
	c.CharDev("dev/null", 1, 3)
	for _, fn := range im.files {
		fn(c)
	}
	return c.Close()
}

// findStaticBusybox returns a statically linked busybox (package busybox-static).
func findStaticBusybox() (string, error) {
	cands := []string{"/bin/busybox", "/usr/bin/busybox"}
	if p, err := exec.LookPath("busybox"); err == nil {
		cands = append([]string{p}, cands...)
	}
	for _, c := range cands {
		ef, err := elf.Open(c)
		if err != nil {
			continue
		}
		static := true
		for _, p := range ef.Progs {
			if p.Type == elf.PT_INTERP {
				static = false
			}
		}
		ef.Close()
		if static {
			return c, nil
		}
	}
	return "", errors.New("no statically linked busybox (apt-get install busybox-static)")
}

type kmod struct {
	name string // normalized: dashes as underscores, no suffix
	path string // relative to the module dir, as in modules.dep
}

var modSuffix = regexp.MustCompile(`\.ko(\.xz|\.zst|\.gz)?$`)

func modName(p string) string {
	return strings.ReplaceAll(modSuffix.ReplaceAllString(path.Base(p), ""), "-", "_")
}

// resolveModules reads modules.dep and modules.builtin and returns the
// modules to insmod, dependencies first, each once.
func resolveModules(k Kernel) ([]kmod, error) {
	depFile, err := os.ReadFile(filepath.Join(k.ModDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	paths := map[string]string{}
	deps := map[string][]string{}
	for _, line := range strings.Split(string(depFile), "\n") {
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n := modName(mod)
		paths[n] = mod
		for _, d := range strings.Fields(rest) {
			deps[n] = append(deps[n], modName(d))
			if _, ok := paths[modName(d)]; !ok {
				paths[modName(d)] = d
			}
		}
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(k.ModDir, "modules.builtin")); err == nil {
		for _, line := range strings.Fields(string(b)) {
			builtin[modName(line)] = true
		}
	}
	var order []kmod
	seen := map[string]bool{}
	var visit func(n string)
	visit = func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		// modules.dep lists the deepest dependency last; modprobe loads
		// from the end of the list.
		ds := deps[n]
		for i := len(ds) - 1; i >= 0; i-- {
			visit(ds[i])
		}
		order = append(order, kmod{name: n, path: paths[n]})
	}
	for _, m := range guestModules {
		switch {
		case paths[m.name] != "":
			visit(m.name)
		case builtin[m.name] || m.optional:
		default:
			return nil, fmt.Errorf("kernel %s has module %s neither as a module nor built in", k.Version, m.name)
		}
	}
	return order, nil
}

// readModule returns the uncompressed module: busybox insmod cannot be relied
// on to decompress .ko.xz/.ko.zst.
func readModule(p string) ([]byte, error) {
	var tool []string
	switch {
	case strings.HasSuffix(p, ".xz"):
		tool = []string{"xz", "-dc", p}
	case strings.HasSuffix(p, ".zst"):
		tool = []string{"zstd", "-dcq", p}
	case strings.HasSuffix(p, ".gz"):
		tool = []string{"gzip", "-dc", p}
	default:
		return os.ReadFile(p)
	}
	out, err := exec.Command(tool[0], tool[1:]...).Output()
	if err != nil {
		return nil, fmt.Errorf("decompressing %s with %s: %w", p, tool[0], err)
	}
	return out, nil
}

// addE2fsprogs copies mke2fs and e2fsck with the shared libraries ldd lists
// (at the same paths) into /opt/e2fs, and returns the library directories.
func addE2fsprogs(im *initramfsImage) ([]string, error) {
	libDirs := map[string]bool{}
	for _, tool := range []struct{ name, links string }{
		{"mke2fs", "mkfs.ext4"},
		{"e2fsck", "fsck.ext4"},
	} {
		bin, err := exec.LookPath(tool.name)
		if err != nil {
			for _, d := range []string{"/sbin", "/usr/sbin"} {
				if _, err2 := os.Stat(filepath.Join(d, tool.name)); err2 == nil {
					bin, err = filepath.Join(d, tool.name), nil
					break
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s not found (apt-get install e2fsprogs)", tool.name)
		}
		if err := im.hostFile(bin, "opt/e2fs/bin/"+tool.name, 0o755); err != nil {
			return nil, err
		}
		im.symlink("opt/e2fs/bin/"+tool.links, tool.name)
		libs, err := lddLibs(bin)
		if err != nil {
			return nil, err
		}
		for _, l := range libs {
			if err := im.hostFile(l, l, 0o755); err != nil {
				return nil, err
			}
			libDirs[path.Dir(l)] = true
		}
	}
	if err := im.hostFile("/etc/mke2fs.conf", "etc/mke2fs.conf", 0o644); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var dirs []string
	for d := range libDirs {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	return dirs, nil
}

// lddLibs returns the absolute paths of bin's shared libraries and loader.
func lddLibs(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
	}
	return libs, nil
}

// Console markers printed by /init. Tests and BootGuest parse them.
const (
	markerBegin = "HLFS-GUEST-BEGIN"
	markerEnd   = "HLFS-GUEST-END"
)

func initScript(libDirs []string) string {
	return `#!/bin/busybox sh
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s
export PATH=/opt/e2fs/bin:/bin:/sbin:/usr/bin:/usr/sbin
export LD_LIBRARY_PATH=` + strings.Join(libDirs, ":") + `
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
while read m; do
	insmod /lib/modules/hlfs/$m.ko || echo "HLFS-GUEST-INSMOD-FAILED $m"
done < /etc/hlfs-modules
i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
echo "` + markerBegin + ` uptime=$(cut -d' ' -f1 /proc/uptime)"
cd /tmp
sh -e /hlfs/script.sh
rc=$?
sync
echo "` + markerEnd + ` rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
sleep 5
reboot -f
`
}
