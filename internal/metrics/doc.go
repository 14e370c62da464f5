// Package metrics exports what a serving hlfs process does in the
// Prometheus text format: per-volume I/O and space, request latencies,
// connections and memory. "hlfs serve --metrics-listen ADDR" serves it on
// http://ADDR/metrics.
//
// Use: New, then AddVolume when a volume is opened for serving and
// RemoveVolume when it is closed, Observe as the nbdserver.Options.Observe
// of the NBD server, SetConnections and SetMemory for the process-wide
// gauges, and Serve (or Handler) for the HTTP side.
//
// Series labelled with a volume exist only while the volume is added: they
// are computed at scrape time from the set of open volumes (a
// prometheus.Collector), so a closed volume's series disappear, and its
// counters start from zero if it is opened again (a counter reset, which
// Prometheus's rate() handles). A scrape does no store I/O: it reads
// counters and the estimates each volume keeps (lfs.Volume.SpaceEstimate).
//
// The metrics (names are a contract; never rename):
//
//	hlfs_volume_read_bytes_total{volume}        bytes read by NBD clients (successful reads)
//	hlfs_volume_write_bytes_total{volume}       bytes written by NBD clients (successful writes)
//	hlfs_volume_requests_total{volume,op}       NBD requests, failed ones included (ops seen so far)
//	hlfs_volume_request_errors_total{volume,op} NBD requests that failed (ops that failed so far)
//	hlfs_request_duration_seconds{op}           histogram: request header read to reply sent
//	hlfs_flush_duration_seconds                 histogram: the same for flush requests alone
//	hlfs_volume_stored_bytes{volume}            closed log segment bytes in the store (cleaner's last count)
//	hlfs_volume_garbage_bytes{volume}           of those, bytes nothing names (cleaner's last count)
//	hlfs_cleaner_copied_bytes_total{volume}     bytes the cleaner copied forward since open
//	hlfs_checksum_errors_total{volume}          reads that failed a checksum since open
//	hlfs_open_volumes                           volumes added and not removed
//	hlfs_connections                            NBD connections being served
//	hlfs_memory_budget_bytes                    the memory budget's limit
//	hlfs_memory_used_bytes                      the memory budget's use
//
// plus the Go runtime (go_*) and process (process_*) collectors. Requests
// to a snapshot export VOLUME@SNAPSHOT count for VOLUME. The two space
// gauges appear once the volume's background cleaner has counted (every
// --gc-interval; never with --no-gc); the two memory gauges appear once
// SetMemory gave a budget.
//
// All methods are safe for concurrent use.
package metrics
