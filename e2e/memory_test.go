package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestMemoryBudget serves 16 volumes with --memory 64M and writes 16 MiB
// to each through qemu-io, all at once (256 MiB in total, 16 volumes whose
// 32 MiB segments would each hold it in memory without a budget); every
// byte reads back, the server stays up, and its peak RSS (VmHWM) stays far
// below what the segments would take.
func TestMemoryBudget(t *testing.T) {
	Begin(t, "qemu-io")
	requireHLFS(t)
	const (
		vols     = 16
		perVol   = 16 << 20
		chunk    = 1 << 20
		maxPeak  = 288 << 20 // 64M budget, Go's soft limit at 160M; 583 MiB without the budget
		budgetMB = 64
	)
	var vs []Volume
	for i := range vols {
		vs = append(vs, Volume{Name: fmt.Sprintf("mem%d", i), Size: 64 << 20})
	}
	s := newServer(t, vs...)
	metricsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	s.ServeArgs = []string{"--memory", fmt.Sprintf("%dM", budgetMB), "--no-gc", "--metrics-listen", metricsAddr}
	s.Start()
	pattern := func(vol, k int) int { return (vol*31+k*7)%250 + 1 }
	qemuIO := func(vol int, op string) error {
		args := []string{"-f", "raw", s.URI(fmt.Sprintf("mem%d", vol))}
		for k := range perVol / chunk {
			args = append(args, "-c", fmt.Sprintf("%s -P %d %d %d", op, pattern(vol, k), k*chunk, chunk))
		}
		out, err := exec.Command("qemu-io", args...).CombinedOutput()
		if err != nil || strings.Contains(string(out), "failed") {
			return fmt.Errorf("qemu-io %s on mem%d: %v: %s", op, vol, err, tail(string(out), 5))
		}
		return nil
	}
	all := func(op string) {
		var wg sync.WaitGroup
		errs := make(chan error, vols)
		for i := range vols {
			wg.Go(func() { errs <- qemuIO(i, op) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	all("write")
	t.Logf("after the writes: peak RSS %d MiB", vmHWM(t, s.PID())>>20)
	// The budget as Prometheus sees it: its limit, and use within it.
	limit, used := memoryMetrics(t, metricsAddr)
	if limit != budgetMB<<20 || used < 0 || used > limit {
		t.Errorf("hlfs_memory_budget_bytes %d, hlfs_memory_used_bytes %d; want %d and at most that", limit, used, budgetMB<<20)
	}
	all("read") // qemu-io read -P checks every byte
	peak := vmHWM(t, s.PID())
	t.Logf("--memory %dM, %d volumes written %d MiB each at once: peak RSS %d MiB", budgetMB, vols, perVol>>20, peak>>20)
	if peak > maxPeak {
		t.Errorf("peak RSS %d MiB, want at most %d MiB", peak>>20, maxPeak>>20)
	}
	s.Stop()
	s.Fsck("mem0")
	s.Fsck(fmt.Sprintf("mem%d", vols-1))
}

// vmHWM returns the peak resident set size of process pid.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// memoryMetrics scrapes hlfs_memory_budget_bytes and hlfs_memory_used_bytes.
func memoryMetrics(t *testing.T, addr string) (limit, used int64) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	limit, used = -1, -1
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "hlfs_memory_budget_bytes":
			limit = int64(v)
		case "hlfs_memory_used_bytes":
			used = int64(v)
		}
	}
	if limit < 0 || used < 0 {
		t.Fatalf("no memory metrics in:\n%s", b)
	}
	return limit, used
}
