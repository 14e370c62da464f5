package main

import (
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on the default mux
	"os"
)

// startPprof serves Go's profiler on $HLFS_PPROF (for example
// 127.0.0.1:6060) when set: a debugging aid for performance work, off by
// default and never on a non-loopback address unless asked for.
func startPprof(log *slog.Logger) {
	addr := os.Getenv("HLFS_PPROF")
	if addr == "" {
		return
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Warn("HLFS_PPROF: cannot listen", "addr", addr, "err", err)
		return
	}
	log.Info("profiler listening", "addr", l.Addr().String())
	go func() { _ = http.Serve(l, nil) }()
}
