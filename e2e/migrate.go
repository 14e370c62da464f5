package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// A MigratingGuest is one guest (BootGuest's kernel, initramfs and script)
// that live-migrates between QEMU processes: it boots on one disk URI, and
// MigrateTo starts a destination QEMU with -incoming on another URI of the
// same disk, runs `migrate -d` on the current QEMU's human monitor, waits
// for `info migrate` to say completed and quits the source. The console of
// every QEMU it ran goes, in order, to one log and one OnLine callback.
type MigratingGuest struct {
	tb    testing.TB
	opt   GuestOptions
	args  []string // QEMU arguments before the -drive
	drive string   // the -drive value with %s for the disk URI
	dir   string

	mu       sync.Mutex
	console  bytes.Buffer
	cur      *qemuProc
	procs    int
	deadline time.Time
}

// qemuProc is one QEMU process of a MigratingGuest.
type qemuProc struct {
	cmd     *exec.Cmd
	monitor string // the HMP Unix socket
	done    chan struct{}
	err     error
}

// StartMigratingGuest boots script as BootGuest does on nbdURI, with a
// human monitor on a Unix socket, and returns without waiting.
func StartMigratingGuest(tb testing.TB, nbdURI, script string, opt GuestOptions) *MigratingGuest {
	tb.Helper()
	g := &MigratingGuest{tb: tb, dir: tb.TempDir()}
	all := guestArgs(tb, "NBDURI", script, &opt)
	g.opt = opt
	g.args = all[:len(all)-2]
	g.drive = strings.Replace(all[len(all)-1], "NBDURI", "%s", 1)
	g.deadline = time.Now().Add(opt.Timeout)
	g.cur = g.start(nbdURI, "")
	tb.Cleanup(func() {
		g.mu.Lock()
		p := g.cur
		g.mu.Unlock()
		if p != nil {
			p.kill()
		}
		if tb.Failed() {
			tb.Logf("guest console tail:\n%s", tail(g.Console(), 60))
		}
	})
	return g
}

// start starts a QEMU on nbdURI; incoming, when not empty, is its
// -incoming address.
func (g *MigratingGuest) start(nbdURI, incoming string) *qemuProc {
	g.tb.Helper()
	g.procs++
	p := &qemuProc{monitor: filepath.Join(g.dir, "mon"+strconv.Itoa(g.procs)+".sock"), done: make(chan struct{})}
	args := append(append([]string{}, g.args...), "-drive", fmt.Sprintf(g.drive, nbdURI),
		"-monitor", "unix:"+p.monitor+",server=on,wait=off")
	if incoming != "" {
		args = append(args, "-incoming", incoming)
	}
	p.cmd = exec.Command("qemu-system-x86_64", args...)
	logFile, err := os.OpenFile(filepath.Join(g.dir, "console.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		g.tb.Fatal(err)
	}
	var out io.Writer = io.MultiWriter(lockedWriter{&g.mu, &g.console}, logFile)
	if g.opt.OnLine != nil {
		out = io.MultiWriter(out, &lineWriter{fn: g.opt.OnLine})
	}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		g.tb.Fatalf("starting qemu: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	// The monitor socket exists once QEMU has parsed its options.
	for {
		if c, err := net.Dial("unix", p.monitor); err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.done:
			g.tb.Fatalf("qemu exited at start (%v); console tail:\n%s", p.err, tail(g.Console(), 30))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(g.deadline) {
			g.tb.Fatal("qemu monitor never came up")
		}
	}
}

func (p *qemuProc) kill() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Console returns every console line so far, "\r" removed.
func (g *MigratingGuest) Console() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.ReplaceAll(g.console.String(), "\r", "")
}

// hmp runs one human monitor command on p and returns its output.
func (p *qemuProc) hmp(cmd string) (string, error) {
	c, err := net.DialTimeout("unix", p.monitor, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	if _, err := readToPrompt(br); err != nil { // the banner
		return "", fmt.Errorf("monitor banner: %w", err)
	}
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	out, err := readToPrompt(br)
	if err != nil {
		return out, fmt.Errorf("monitor %q: %w", cmd, err)
	}
	return out, nil
}

// readToPrompt reads up to and including the next "(qemu) " prompt and
// returns what came before it.
func readToPrompt(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		c, err := br.ReadByte()
		if err != nil {
			return b.String(), err
		}
		b.WriteByte(c)
		if strings.HasSuffix(b.String(), "(qemu) ") {
			return strings.TrimSuffix(b.String(), "(qemu) "), nil
		}
	}
}

var migrationStatusRE = regexp.MustCompile(`Migration status: (\S+)`)

// MigrationStats is what `info migrate` said at the end of one migration.
type MigrationStats struct {
	Took     time.Duration // from `migrate -d` to status completed, seen from the host
	Downtime string        // QEMU's "downtime: N ms" line
	Info     string        // the whole `info migrate` output
}

// MigrateTo live-migrates the guest to a new QEMU whose disk is nbdURI:
// it starts that QEMU with -incoming defer, has it listen on a free
// loopback port (migrate_incoming), runs
// `migrate -d` on the current one, polls `info migrate` until completed
// (failing tb if it fails or the guest's deadline passes), then quits the
// source (paused and inactive by then). The destination runs on.
func (g *MigratingGuest) MigrateTo(nbdURI string) MigrationStats {
	g.tb.Helper()
	src := g.cur
	port := freePort(g.tb)
	// -incoming defer, then migrate_incoming: the listener is up when
	// the monitor command returns.
	dst := g.start(nbdURI, "defer")
	if out, err := dst.hmp("migrate_incoming tcp:127.0.0.1:" + strconv.Itoa(port)); err != nil || strings.Contains(out, "rror") {
		g.tb.Fatalf("migrate_incoming: %v: %s", err, out)
	}
	// Zero pages cost nearly nothing, but the default 128 MiB/s bound
	// would stretch the rest for nothing on loopback.
	if out, err := src.hmp("migrate_set_parameter max-bandwidth 1G"); err != nil {
		g.tb.Fatalf("%v: %s", err, out)
	}
	t0 := time.Now()
	if out, err := src.hmp("migrate -d tcp:127.0.0.1:" + strconv.Itoa(port)); err != nil || strings.Contains(out, "rror") {
		g.tb.Fatalf("migrate -d: %v: %s", err, out)
	}
	for {
		info, err := src.hmp("info migrate")
		if err != nil {
			g.tb.Fatal(err)
		}
		status := ""
		if m := migrationStatusRE.FindStringSubmatch(info); m != nil {
			status = m[1]
		}
		switch status {
		case "completed":
			st := MigrationStats{Took: time.Since(t0), Info: info}
			if m := regexp.MustCompile(`(?m)^downtime: (\d+ ms)`).FindStringSubmatch(info); m != nil {
				st.Downtime = m[1]
			}
			src.hmp("quit")
			select {
			case <-src.done:
			case <-time.After(10 * time.Second):
				src.kill()
			}
			g.mu.Lock()
			g.cur = dst
			g.mu.Unlock()
			return st
		case "failed", "cancelled":
			g.tb.Fatalf("migration %s:\n%s", status, info)
		}
		if time.Now().After(g.deadline) {
			g.tb.Fatalf("migration not completed by the guest's deadline; last info:\n%s", info)
		}
		select {
		case <-dst.done:
			g.tb.Fatalf("destination qemu exited during the migration (%v)", dst.err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Wait waits for the current QEMU to exit (the guest powers off after its
// script) and returns the result, as RunGuest does.
func (g *MigratingGuest) Wait() GuestResult {
	g.tb.Helper()
	p := g.cur
	ctx, cancel := context.WithDeadline(context.Background(), g.deadline)
	defer cancel()
	select {
	case <-p.done:
	case <-ctx.Done():
		p.kill()
		g.tb.Fatalf("guest timed out after %v; console tail:\n%s", g.opt.Timeout, tail(g.Console(), 60))
	}
	res := GuestResult{Console: g.Console(), ExitCode: -1}
	if os.Getenv("HLFS_GUEST_VERBOSE") == "1" {
		g.tb.Logf("guest console:\n%s", res.Console)
	}
	parseGuestConsole(g.tb, &res, p.err)
	return res
}
