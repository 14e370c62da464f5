package metrics

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hlfs/hlfs/nbdserver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Volume is what the metrics read from an open volume; *lfs.Volume has it.
// Every method must be cheap (no store I/O): a scrape calls them.
type Volume interface {
	// CleanerCopiedBytes counts the bytes the cleaner copied since open.
	CleanerCopiedBytes() int64
	// ChecksumErrors counts reads that failed a checksum since open.
	ChecksumErrors() int64
	// SpaceEstimate returns the stored and garbage bytes of the volume's
	// log, or ok false while they are not known.
	SpaceEstimate() (stored, garbage int64, ok bool)
}

// Memory is a memory budget: its limit and current use in bytes.
type Memory interface {
	Limit() int64
	Used() int64
}

// ops are the values of the op label, as nbdserver.RequestEvent.Op names them.
var ops = [...]string{"read", "write", "flush", "trim", "zero", "block_status", "cache", "unknown"}

// opIndex returns the index of op in ops (the last, "unknown", for others).
func opIndex(op string) int {
	for i, o := range ops {
		if o == op {
			return i
		}
	}
	return len(ops) - 1
}

// durationBuckets are the histogram buckets in seconds: 100 µs to 10 s,
// three to a decade.
var durationBuckets = prometheus.ExponentialBucketsRange(100e-6, 10, 16)

// Metrics collects and serves the metrics of one process. Create it with New.
type Metrics struct {
	reg      *prometheus.Registry
	duration *prometheus.HistogramVec
	flush    prometheus.Histogram
	// byOp are duration's children by op index: Observe skips the label lookup.
	byOp [len(ops)]prometheus.Observer

	// mu guards vols (the open volumes) and the sources; no I/O under it.
	mu struct {
		sync.RWMutex
		vols        map[string]*volume
		connections func() int
		memory      Memory
	}

	srv *http.Server
}

// volume is one open volume and its request counters.
type volume struct {
	src                   Volume
	readBytes, writeBytes atomic.Int64
	requests, errors      [len(ops)]atomic.Int64
}

// New returns Metrics with every metric registered and no volume.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.mu.vols = make(map[string]*volume)
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "hlfs_request_duration_seconds",
		Help:    "Time from an NBD request's header read to its reply sent, by op.",
		Buckets: durationBuckets,
	}, []string{"op"})
	m.flush = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hlfs_flush_duration_seconds",
		Help:    "Time an NBD flush request took to make the writes before it durable.",
		Buckets: durationBuckets,
	})
	for i, op := range ops {
		m.byOp[i] = m.duration.WithLabelValues(op)
	}
	m.reg.MustRegister(m.duration, m.flush, (*collector)(m),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// AddVolume starts exporting the series of the open volume name. Adding a
// name already added replaces its volume and restarts its counters.
// AddVolume, RemoveVolume, SetConnections and SetMemory do nothing on a
// nil *Metrics (serve without --metrics-listen).
func (m *Metrics) AddVolume(name string, v Volume) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.mu.vols[name] = &volume{src: v}
	m.mu.Unlock()
}

// RemoveVolume drops the series of volume name: call it when it closes.
func (m *Metrics) RemoveVolume(name string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	delete(m.mu.vols, name)
	m.mu.Unlock()
}

// SetConnections sets the function that hlfs_connections reads at scrape
// time, e.g. (*nbdserver.Server).Connections. Without it the gauge is 0.
func (m *Metrics) SetConnections(fn func() int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.mu.connections = fn
	m.mu.Unlock()
}

// SetMemory sets the memory budget that hlfs_memory_budget_bytes and
// hlfs_memory_used_bytes report; without it they are not exported. mem
// must not be a nil pointer: pass nothing rather than a nil budget.
func (m *Metrics) SetMemory(mem Memory) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.mu.memory = mem
	m.mu.Unlock()
}

// Observe counts one NBD request; it is an nbdserver.Options.Observe.
// Requests of an export whose volume is not added count only in the
// duration histograms.
func (m *Metrics) Observe(ev nbdserver.RequestEvent) {
	i := opIndex(ev.Op)
	secs := ev.Duration.Seconds()
	m.byOp[i].Observe(secs)
	if i == 2 { // flush
		m.flush.Observe(secs)
	}
	name, _, _ := strings.Cut(ev.Export, "@")
	m.mu.RLock()
	vol := m.mu.vols[name]
	m.mu.RUnlock()
	if vol == nil {
		return
	}
	vol.requests[i].Add(1)
	if ev.Err != nil {
		vol.errors[i].Add(1)
		return
	}
	switch i {
	case 0:
		vol.readBytes.Add(ev.Bytes)
	case 1:
		vol.writeBytes.Add(ev.Bytes)
	}
}

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is where the metrics are registered (for tests and for more
// collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Serve serves /metrics over HTTP on l until Close, then returns nil. Call
// it once.
func (m *Metrics) Serve(l net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	m.mu.Lock()
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	srv := m.srv
	m.mu.Unlock()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close stops Serve: it closes the listener and open connections.
func (m *Metrics) Close() error {
	m.mu.RLock()
	srv := m.srv
	m.mu.RUnlock()
	if srv == nil {
		return nil
	}
	return srv.Close()
}

// ListenAddr turns the --metrics-listen value into a TCP address: a bare
// port ("9100") or a port without a host (":9100") means 127.0.0.1 (the
// metrics are for the local collector unless a host is named); a host,
// including 0.0.0.0 or [::], is kept.
func ListenAddr(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty address")
	}
	if !strings.Contains(s, ":") {
		s = ":" + s
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", err
	}
	if port == "" {
		return "", errors.New("no port in " + s)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}
