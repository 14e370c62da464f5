package e2e

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricsWorkload writes, reads and flushes through Python libnbd (exactly
// these requests reach the server), prints "done" and stays connected until
// its stdin closes.
const metricsWorkload = `
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
for i in range(5):
    h.pwrite(bytes([i + 1]) * 65536, i << 20)   # 5 x 64 KiB
h.pwrite(b"\xee" * 4096, 15 << 20)                # 4 KiB
h.flush()
for i in range(5):
    assert h.pread(65536, i << 20) == bytes([i + 1]) * 65536
h.flush()
print("done", flush=True)
sys.stdin.read()
h.shutdown()
`

// TestMetricsAfterKnownWorkload scrapes serve's /metrics after a known
// workload: bytes written and read exactly, requests per op, the open volume
// and the connection, then the connection gone.
func TestMetricsAfterKnownWorkload(t *testing.T) {
	Begin(t)
	if backendFromEnv() != BackendHLFS {
		t.Skip("metrics are hlfs serve's")
	}
	py := Python(t)
	s := newServer(t, Volume{Name: "vm1", Size: 16 << 20}, Volume{Name: "idle", Size: 1 << 20})
	port := strconv.Itoa(freePort(t))
	s.ServeArgs = []string{"--metrics-listen", port} // a bare port: loopback
	s.Exports = []string{"vm1"}
	s.Start()
	url := "http://127.0.0.1:" + port + "/metrics"

	cmd := exec.Command(py, "-c", metricsWorkload, s.URI("vm1"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "done\n" {
		t.Fatalf("workload: %q %v", line, err)
	}

	// A request is counted right after its reply went out: wait for the
	// last of the 13.
	text := pollMetrics(t, url, func(text string) bool {
		return sample(t, text, `hlfs_volume_requests_total{op="flush",volume="vm1"}`) == 2
	})
	for name, want := range map[string]float64{
		`hlfs_volume_write_bytes_total{volume="vm1"}`:                5*65536 + 4096,
		`hlfs_volume_read_bytes_total{volume="vm1"}`:                 5 * 65536,
		`hlfs_volume_requests_total{op="write",volume="vm1"}`:        6,
		`hlfs_volume_requests_total{op="read",volume="vm1"}`:         5,
		`hlfs_volume_requests_total{op="flush",volume="vm1"}`:        2,
		`hlfs_request_duration_seconds_count{op="write"}`:            6,
		`hlfs_request_duration_seconds_count{op="read"}`:             5,
		`hlfs_flush_duration_seconds_count`:                          2,
		`hlfs_open_volumes`:                                          1,
		`hlfs_connections`:                                           1,
		`hlfs_checksum_errors_total{volume="vm1"}`:                   0,
		`hlfs_cleaner_copied_bytes_total{volume="vm1"}`:              0,
		`hlfs_request_duration_seconds_bucket{op="write",le="+Inf"}`: 6,
	} {
		if got := sample(t, text, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for _, absent := range []string{`volume="idle"`, `hlfs_volume_request_errors_total`, `hlfs_volume_requests_total{op="zero"`} {
		if strings.Contains(text, absent) {
			t.Errorf("/metrics has %s:\n%s", absent, text)
		}
	}
	for _, present := range []string{"go_goroutines ", "process_resident_memory_bytes "} {
		if !strings.Contains(text, present) {
			t.Errorf("/metrics lacks %s", present)
		}
	}

	// The background cleaner's first look (every --gc-interval, 1 s)
	// brings the space gauges.
	text = pollMetrics(t, url, func(text string) bool {
		return sample(t, text, `hlfs_volume_stored_bytes{volume="vm1"}`) >= 0
	})
	if g, st := sample(t, text, `hlfs_volume_garbage_bytes{volume="vm1"}`), sample(t, text, `hlfs_volume_stored_bytes{volume="vm1"}`); g < 0 || g > st {
		t.Errorf("garbage %v of stored %v bytes", g, st)
	}

	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	pollMetrics(t, url, func(text string) bool { return sample(t, text, "hlfs_connections") == 0 })
	s.Stop()
}

// pollMetrics scrapes url until ok accepts the text (10 s at most).
func pollMetrics(t *testing.T, url string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %v", url, resp.Status, err)
		}
		if ok(string(b)) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: not there after 10 s:\n%s", url, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sample returns the value of the series named exactly (name and labels as
// the text format writes them, labels sorted), or -1 when absent.
func sample(t *testing.T, text, series string) float64 {
	t.Helper()
	for line := range strings.Lines(text) {
		rest, ok := strings.CutPrefix(line, series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return v
	}
	return -1
}
