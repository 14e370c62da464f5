package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/metrics"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/lfs"
	"github.com/hlfs/hlfs/nbdserver"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// catalog serves real volumes by name.
type catalog map[string]*lfs.Volume

func (c catalog) Names() []string { return nil }

func (c catalog) Lookup(name string) (nbdserver.Export, nbdserver.ExportInfo, error) {
	if v, ok := c[name]; ok {
		return v, nbdserver.ExportInfo{}, nil
	}
	return nil, nbdserver.ExportInfo{}, fmt.Errorf("%w: %s", nbdserver.ErrUnknownExport, name)
}

// libnbdPython returns a python3 that can import libnbd's nbd module.
func libnbdPython(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if p, err := exec.LookPath(py); err == nil && exec.Command(p, "-c", "import nbd").Run() == nil {
			return p
		}
	}
	if os.Getenv("HLFS_SKIP_REAL_CLIENTS") == "1" {
		t.Skip("python3-libnbd not installed (HLFS_SKIP_REAL_CLIENTS=1)")
	}
	t.Fatal("no python3 can import nbd: scripts/install-test-deps.sh, or set HLFS_SKIP_REAL_CLIENTS=1")
	return ""
}

// workload is a Python libnbd script: exactly these requests reach the
// server (libnbd sends nothing else in transmission but NBD_CMD_DISC).
const workload = `
import nbd, sys
h = nbd.NBD()
h.set_strict_mode(0)  # let the server judge the range
h.connect_uri(sys.argv[1])
h.pwrite(b"\x01" * 65536, 0)
h.pwrite(b"\x02" * 4096, 1 << 20)
h.pwrite(b"\x03" * 512, 8 << 20)
assert h.pread(65536, 0) == b"\x01" * 65536
assert h.pread(4096, 1 << 20) == b"\x02" * 4096
h.flush()
h.zero(8192, 2 << 20)
try:
    h.pread(4096, 64 << 20)  # beyond the end: EINVAL from the server
    sys.exit("read beyond the end succeeded")
except nbd.Error:
    pass
print("connected", flush=True)
sys.stdin.read()  # stay connected until told
h.shutdown()
`

func TestKnownWorkload(t *testing.T) {
	py := libnbdPython(t)
	st := objstore.NewMemStore(true, 1)
	require.NoError(t, lfs.Create(st, "vm1", lfs.Config{Size: 16 << 20}))
	v, err := lfs.Open(st, "vm1", lfs.Options{})
	require.NoError(t, err)
	defer v.Close()

	m := metrics.New()
	m.AddVolume("vm1", v)
	srv := nbdserver.New(catalog{"vm1": v}, nbdserver.Options{Observe: m.Observe})
	m.SetConnections(srv.Connections)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())

	cmd := exec.Command(py, "-c", workload, "nbd://"+l.Addr().String()+"/vm1")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	line := make([]byte, len("connected\n"))
	_, err = io.ReadFull(stdout, line)
	require.NoError(t, err, "the workload did not finish")

	// A request is observed just after its reply is sent: wait for the
	// last of the eight, then the counters are exact.
	waitFor(t, func() bool { return sumCounters(t, m, "hlfs_volume_requests_total") == 8 })
	require.NoError(t, testutil.CollectAndCompare(m.Registry(), strings.NewReader(`
# HELP hlfs_volume_write_bytes_total Bytes written to the volume by NBD clients since it was opened.
# TYPE hlfs_volume_write_bytes_total counter
hlfs_volume_write_bytes_total{volume="vm1"} 70144
# HELP hlfs_volume_read_bytes_total Bytes read from the volume by NBD clients since it was opened.
# TYPE hlfs_volume_read_bytes_total counter
hlfs_volume_read_bytes_total{volume="vm1"} 69632
# HELP hlfs_volume_requests_total NBD requests served on the volume since it was opened, failed ones included.
# TYPE hlfs_volume_requests_total counter
hlfs_volume_requests_total{op="flush",volume="vm1"} 1
hlfs_volume_requests_total{op="read",volume="vm1"} 3
hlfs_volume_requests_total{op="write",volume="vm1"} 3
hlfs_volume_requests_total{op="zero",volume="vm1"} 1
# HELP hlfs_volume_request_errors_total NBD requests on the volume that failed since it was opened.
# TYPE hlfs_volume_request_errors_total counter
hlfs_volume_request_errors_total{op="read",volume="vm1"} 1
# HELP hlfs_open_volumes Volumes open for serving.
# TYPE hlfs_open_volumes gauge
hlfs_open_volumes 1
# HELP hlfs_connections NBD client connections being served (negotiating or transmitting).
# TYPE hlfs_connections gauge
hlfs_connections 1
# HELP hlfs_checksum_errors_total Reads of the volume that failed a checksum since it was opened.
# TYPE hlfs_checksum_errors_total counter
hlfs_checksum_errors_total{volume="vm1"} 0
# HELP hlfs_cleaner_copied_bytes_total Bytes the cleaner copied forward in the volume since it was opened.
# TYPE hlfs_cleaner_copied_bytes_total counter
hlfs_cleaner_copied_bytes_total{volume="vm1"} 0
`), "hlfs_volume_write_bytes_total", "hlfs_volume_read_bytes_total", "hlfs_volume_requests_total",
		"hlfs_volume_request_errors_total", "hlfs_open_volumes", "hlfs_connections",
		"hlfs_checksum_errors_total", "hlfs_cleaner_copied_bytes_total"))
	require.Equal(t, map[string]uint64{"read": 3, "write": 3, "flush": 1, "zero": 1}, histogramCounts(t, m, "hlfs_request_duration_seconds"))
	require.Equal(t, map[string]uint64{"": 1}, histogramCounts(t, m, "hlfs_flush_duration_seconds"))
	// No space estimate without a cleaner: the gauges are left out.
	require.Zero(t, testutil.CollectAndCount(m.Registry(), "hlfs_volume_stored_bytes", "hlfs_volume_garbage_bytes"))
	// No memory budget given: left out too.
	require.Zero(t, testutil.CollectAndCount(m.Registry(), "hlfs_memory_budget_bytes", "hlfs_memory_used_bytes"))

	require.NoError(t, stdin.Close())
	require.NoError(t, cmd.Wait())
	waitFor(t, func() bool { return srv.Connections() == 0 })

	// A closed volume's series go away; the histograms stay (label op only).
	m.RemoveVolume("vm1")
	require.Zero(t, testutil.CollectAndCount(m.Registry(), "hlfs_volume_write_bytes_total", "hlfs_volume_read_bytes_total",
		"hlfs_volume_requests_total", "hlfs_volume_request_errors_total", "hlfs_checksum_errors_total", "hlfs_cleaner_copied_bytes_total"))
	require.NoError(t, testutil.CollectAndCompare(m.Registry(), strings.NewReader(`
# HELP hlfs_open_volumes Volumes open for serving.
# TYPE hlfs_open_volumes gauge
hlfs_open_volumes 0
# HELP hlfs_connections NBD client connections being served (negotiating or transmitting).
# TYPE hlfs_connections gauge
hlfs_connections 0
`), "hlfs_open_volumes", "hlfs_connections"))
	// Requests of a volume that is not added count nowhere per volume.
	m.Observe(nbdserver.RequestEvent{Export: "vm1", Op: "write", Bytes: 4096})
	require.Zero(t, testutil.CollectAndCount(m.Registry(), "hlfs_volume_write_bytes_total"))
}

// sumCounters adds up every series of a counter.
func sumCounters(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, s := range mf.GetMetric() {
				sum += s.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// histogramCounts returns the sample count of each series of a histogram,
// by its op label.
func histogramCounts(t *testing.T, m *metrics.Metrics, name string) map[string]uint64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	require.NoError(t, err)
	got := make(map[string]uint64)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			if n := s.GetHistogram().GetSampleCount(); n > 0 {
				got[label(s, "op")] = n
			}
		}
	}
	return got
}

func label(s *dto.Metric, name string) string {
	for _, l := range s.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// fakeVolume is a Volume with fixed figures.
type fakeVolume struct{ stored, garbage, copied, checksum int64 }

func (f fakeVolume) CleanerCopiedBytes() int64 { return f.copied }
func (f fakeVolume) ChecksumErrors() int64     { return f.checksum }
func (f fakeVolume) SpaceEstimate() (int64, int64, bool) {
	return f.stored, f.garbage, true
}

// budget is a Memory.
type budget struct{ limit, used int64 }

func (b budget) Limit() int64 { return b.limit }
func (b budget) Used() int64  { return b.used }

func TestServeOverHTTP(t *testing.T) {
	m := metrics.New()
	m.AddVolume("a", fakeVolume{stored: 3 << 20, garbage: 1 << 20, copied: 5, checksum: 2})
	m.AddVolume("b@ignored", fakeVolume{})
	m.RemoveVolume("b@ignored")
	m.SetMemory(budget{limit: 256 << 20, used: 12345})
	m.Observe(nbdserver.RequestEvent{Export: "a@snap1", Op: "read", Bytes: 512, Duration: time.Millisecond})
	m.Observe(nbdserver.RequestEvent{Export: "a", Op: "write", Bytes: 512, Err: errors.New("EIO")})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- m.Serve(l) }()

	resp, err := http.Get("http://" + l.Addr().String() + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	text := string(body)
	for _, want := range []string{
		`hlfs_volume_stored_bytes{volume="a"} 3.145728e+06`,
		`hlfs_volume_garbage_bytes{volume="a"} 1.048576e+06`,
		`hlfs_cleaner_copied_bytes_total{volume="a"} 5`,
		`hlfs_checksum_errors_total{volume="a"} 2`,
		`hlfs_volume_read_bytes_total{volume="a"} 512`, // a snapshot's reads count for its volume
		`hlfs_volume_write_bytes_total{volume="a"} 0`,  // a failed write moves no byte
		`hlfs_volume_request_errors_total{op="write",volume="a"} 1`,
		`hlfs_memory_budget_bytes 2.68435456e+08`,
		`hlfs_memory_used_bytes 12345`,
		`hlfs_open_volumes 1`,
		`hlfs_connections 0`,
		`hlfs_request_duration_seconds_count{op="read"} 1`,
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		require.Contains(t, text, want)
	}
	require.NotContains(t, text, `volume="b`)

	require.NoError(t, m.Close())
	require.NoError(t, <-served)
}

func TestListenAddr(t *testing.T) {
	for in, want := range map[string]string{
		"9100":         "127.0.0.1:9100",
		":9100":        "127.0.0.1:9100",
		"0.0.0.0:9100": "0.0.0.0:9100",
		"[::1]:9100":   "[::1]:9100",
		"host:9100":    "host:9100",
		"[::]:9100":    "[::]:9100",
	} {
		got, err := metrics.ListenAddr(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "host:", "a:b:c"} {
		_, err := metrics.ListenAddr(bad)
		require.Error(t, err, bad)
	}
}

// waitFor polls cond until it holds, for at most 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
