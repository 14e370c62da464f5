package metrics

import (
	"maps"

	"github.com/prometheus/client_golang/prometheus"
)

// The descriptions of the series computed at scrape time.
var (
	descReadBytes = prometheus.NewDesc("hlfs_volume_read_bytes_total",
		"Bytes read from the volume by NBD clients since it was opened.", []string{"volume"}, nil)
	descWriteBytes = prometheus.NewDesc("hlfs_volume_write_bytes_total",
		"Bytes written to the volume by NBD clients since it was opened.", []string{"volume"}, nil)
	descRequests = prometheus.NewDesc("hlfs_volume_requests_total",
		"NBD requests served on the volume since it was opened, failed ones included.", []string{"volume", "op"}, nil)
	descErrors = prometheus.NewDesc("hlfs_volume_request_errors_total",
		"NBD requests on the volume that failed since it was opened.", []string{"volume", "op"}, nil)
	descStored = prometheus.NewDesc("hlfs_volume_stored_bytes",
		"Bytes of the volume's closed log segments in the store, as the cleaner last counted them.", []string{"volume"}, nil)
	descGarbage = prometheus.NewDesc("hlfs_volume_garbage_bytes",
		"Bytes of the volume's closed log segments that nothing names, as the cleaner last counted them.", []string{"volume"}, nil)
	descCopied = prometheus.NewDesc("hlfs_cleaner_copied_bytes_total",
		"Bytes the cleaner copied forward in the volume since it was opened.", []string{"volume"}, nil)
	descChecksum = prometheus.NewDesc("hlfs_checksum_errors_total",
		"Reads of the volume that failed a checksum since it was opened.", []string{"volume"}, nil)
	descOpen = prometheus.NewDesc("hlfs_open_volumes",
		"Volumes open for serving.", nil, nil)
	descConns = prometheus.NewDesc("hlfs_connections",
		"NBD client connections being served (negotiating or transmitting).", nil, nil)
	descBudget = prometheus.NewDesc("hlfs_memory_budget_bytes",
		"The memory budget of the in-memory log data and request payloads.", nil, nil)
	descUsed = prometheus.NewDesc("hlfs_memory_used_bytes",
		"The part of the memory budget in use.", nil, nil)
)

// collector computes the series of the open volumes and the process
// gauges at scrape time.
type collector Metrics

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReadBytes, descWriteBytes, descRequests, descErrors,
		descStored, descGarbage, descCopied, descChecksum, descOpen, descConns, descBudget, descUsed} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	// Copy under the lock, emit without: AddVolume and Observe never wait
	// for a slow scrape.
	c.mu.RLock()
	vols := make(map[string]*volume, len(c.mu.vols))
	maps.Copy(vols, c.mu.vols)
	conns, mem := c.mu.connections, c.mu.memory
	c.mu.RUnlock()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	for name, vol := range vols {
		counter(descReadBytes, vol.readBytes.Load(), name)
		counter(descWriteBytes, vol.writeBytes.Load(), name)
		for i, op := range ops {
			if n := vol.requests[i].Load(); n > 0 {
				counter(descRequests, n, name, op)
			}
			if n := vol.errors[i].Load(); n > 0 {
				counter(descErrors, n, name, op)
			}
		}
		if stored, garbage, ok := vol.src.SpaceEstimate(); ok {
			ch <- prometheus.MustNewConstMetric(descStored, prometheus.GaugeValue, float64(stored), name)
			ch <- prometheus.MustNewConstMetric(descGarbage, prometheus.GaugeValue, float64(garbage), name)
		}
		counter(descCopied, vol.src.CleanerCopiedBytes(), name)
		counter(descChecksum, vol.src.ChecksumErrors(), name)
	}
	gauge(descOpen, int64(len(vols)))
	n := 0
	if conns != nil {
		n = conns()
	}
	gauge(descConns, int64(n))
	if mem != nil {
		gauge(descBudget, mem.Limit())
		gauge(descUsed, mem.Used())
	}
}
