package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// GuestOptions tune one guest boot. The zero value is the default.
type GuestOptions struct {
	// Timeout bounds the whole boot; default 180 s or HLFS_GUEST_TIMEOUT
	// (a Go duration). A boot normally takes 5-30 s under TCG.
	Timeout time.Duration
	// MemoryMB is the guest RAM; default 512.
	// (HLFS_GUEST_VERBOSE=1 logs every console.)
	MemoryMB int
	// OnLine, if set, is called with each console line as it arrives
	// ("\r" removed), from a goroutine other than the test's: it must not
	// call tb.Fatal and should not block for long.
	OnLine func(line string)
	// QemuArgs are extra QEMU arguments placed before the disk, e.g. the
	// -object tls-creds-x509 that DriveOptions names.
	QemuArgs []string
	// DriveOptions are extra -drive options of the disk, e.g.
	// "file.tls-creds=tls0" for NBD over TLS.
	DriveOptions string
	// Drive, when set, is the whole -drive value of the disk, used instead
	// of the one made of nbdURI and DriveOptions (hlfs attach prints one).
	Drive string
}

// GuestResult is one finished guest boot.
type GuestResult struct {
	Console  string        // the whole serial console, "\r" removed
	Output   string        // the script's output: lines between the markers
	ExitCode int           // the script's exit status
	Elapsed  time.Duration // qemu start to exit
}

// BootGuest boots the host kernel under QEMU (TCG) with nbdURI as the
// virtio disk /dev/vda (cache=none, discard=unmap), runs script inside
// with `sh -e` and powers off. It fails tb if the guest does not finish or the
// script exits non-zero, and returns the serial console output.
//
// Inside the guest: busybox applets, mkfs.ext4/mke2fs, e2fsck/fsck.ext4,
// ext4 loaded, /tmp is a tmpfs, /mnt an empty directory, the working
// directory /tmp. Script output goes to the console.
func BootGuest(tb testing.TB, nbdURI, script string) string {
	tb.Helper()
	r := RunGuest(tb, nbdURI, script, GuestOptions{})
	if r.ExitCode != 0 {
		tb.Fatalf("guest script exited %d; output:\n%s", r.ExitCode, r.Output)
	}
	return r.Console
}

var (
	beginRE = regexp.MustCompile(markerBegin + ` uptime=([0-9.]+)`)
	endRE   = regexp.MustCompile(markerEnd + ` rc=(\d+)(?: uptime=([0-9.]+))?`)
)

// RunGuest is BootGuest without the exit status check. It fails tb only when
// the guest cannot be built or booted, times out, or never reports the
// script's exit status.
func RunGuest(tb testing.TB, nbdURI, script string, opt GuestOptions) GuestResult {
	tb.Helper()
	Begin(tb, "qemu-system-x86_64")
	if opt.Timeout == 0 {
		opt.Timeout = 180 * time.Second
		if d, err := time.ParseDuration(os.Getenv("HLFS_GUEST_TIMEOUT")); err == nil {
			opt.Timeout = d
		}
	}
	if opt.MemoryMB == 0 {
		opt.MemoryMB = 512
	}
	k, err := FindKernel()
	if err != nil {
		tb.Fatal(err)
	}
	t0 := time.Now()
	base, err := BuildInitramfs(k)
	if err != nil {
		tb.Fatal(err)
	}
	if d := time.Since(t0); d > time.Second {
		tb.Logf("built initramfs %s in %v", base, d.Round(time.Millisecond))
	}
	initrd := filepath.Join(tb.TempDir(), "initrd.cpio")
	if err := perBootInitrd(base, initrd, script); err != nil {
		tb.Fatal(err)
	}

	accel := "tcg"
	if a := os.Getenv("HLFS_GUEST_ACCEL"); a != "" {
		accel = a
	}
	args := []string{
		"-machine", "accel=" + accel,
		"-cpu", "max",
		"-m", strconv.Itoa(opt.MemoryMB),
		"-nographic", "-no-reboot", "-nic", "none",
		"-kernel", k.Image,
		"-initrd", initrd,
		"-append", "console=ttyS0 quiet panic=-1 tsc=reliable",
	}
	args = append(args, opt.QemuArgs...)
	drive := "file=" + nbdURI + ",format=raw,if=virtio,cache=none,discard=unmap"
	if opt.DriveOptions != "" {
		drive += "," + opt.DriveOptions
	}
	if opt.Drive != "" {
		drive = opt.Drive
	}
	args = append(args, "-drive", drive)
	ctx, cancel := context.WithTimeout(context.Background(), opt.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	var console bytes.Buffer
	logPath := filepath.Join(tb.TempDir(), "console.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer logFile.Close()
	var out io.Writer = io.MultiWriter(&console, logFile)
	if opt.OnLine != nil {
		out = io.MultiWriter(out, &lineWriter{fn: opt.OnLine})
	}
	cmd.Stdout = out
	cmd.Stderr = cmd.Stdout
	cmd.Stdin = nil
	start := time.Now()
	runErr := cmd.Run()
	res := GuestResult{
		Console:  strings.ReplaceAll(console.String(), "\r", ""),
		Elapsed:  time.Since(start),
		ExitCode: -1,
	}
	tb.Logf("guest boot took %v (qemu: %v)", res.Elapsed.Round(time.Millisecond), runErr)
	if os.Getenv("HLFS_GUEST_VERBOSE") == "1" {
		tb.Logf("guest console:\n%s", res.Console)
	}
	if ctx.Err() != nil {
		tb.Fatalf("guest timed out after %v; console tail:\n%s", opt.Timeout, tail(res.Console, 60))
	}
	bi := strings.Index(res.Console, markerBegin)
	m := endRE.FindStringSubmatchIndex(res.Console)
	if bi < 0 || m == nil {
		tb.Fatalf("guest never reported the script's exit status (qemu: %v); console tail:\n%s", runErr, tail(res.Console, 60))
	}
	res.ExitCode, _ = strconv.Atoi(res.Console[m[2]:m[3]])
	if b := beginRE.FindStringSubmatch(res.Console); b != nil && m[4] >= 0 {
		up0, _ := strconv.ParseFloat(b[1], 64)
		up1, _ := strconv.ParseFloat(res.Console[m[4]:m[5]], 64)
		tb.Logf("guest: kernel+modules up at %.2fs (guest clock), script ran %.2fs, exit %d", up0, up1-up0, res.ExitCode)
	}
	scriptOut := res.Console[bi:m[0]]
	if nl := strings.IndexByte(scriptOut, '\n'); nl >= 0 {
		scriptOut = scriptOut[nl+1:]
	}
	res.Output = scriptOut
	return res
}

// lineWriter calls fn for every complete line written to it.
type lineWriter struct {
	buf []byte
	fn  func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.fn(strings.ReplaceAll(string(w.buf[:i]), "\r", ""))
		w.buf = w.buf[i+1:]
	}
}

// perBootInitrd writes base followed by a second cpio archive holding the
// script as /hlfs/script.sh.
func perBootInitrd(base, dst, script string) error {
	in, err := os.Open(base)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	c := newCpioWriter(out)
	c.File("hlfs/script.sh", 0o755, []byte(script))
	if err := c.Close(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Marker returns the text following the first "prefix" on the console
// (up to the end of that line), or fails tb.
func Marker(tb testing.TB, console, prefix string) string {
	tb.Helper()
	i := strings.Index(console, prefix)
	if i < 0 {
		tb.Fatalf("marker %q not on the console; tail:\n%s", prefix, tail(console, 40))
	}
	rest := console[i+len(prefix):]
	if nl := strings.IndexByte(rest, '\n'); nl >= 0 {
		rest = rest[:nl]
	}
	return strings.TrimSpace(rest)
}

// String returns a short description for logs.
func (r GuestResult) String() string {
	return fmt.Sprintf("exit %d after %v", r.ExitCode, r.Elapsed.Round(time.Millisecond))
}
