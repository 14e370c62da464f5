package main

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/hlfs/hlfs/internal/metrics"
)

// listenMetrics starts the HTTP server of serve's --metrics-listen ADDR
// (nil and a no-op stop when addr is empty). The metrics carry no volume
// until serve adds them.
func listenMetrics(addr string, logger *slog.Logger) (*metrics.Metrics, func(), error) {
	if addr == "" {
		return nil, func() {}, nil
	}
	hostPort, err := metrics.ListenAddr(addr)
	if err != nil {
		return nil, nil, usageError("serve", "--metrics-listen %q: %v; want PORT or HOST:PORT", addr, err)
	}
	l, err := net.Listen("tcp", hostPort)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot listen on %s for metrics: %w", hostPort, unwrapOpError(err))
	}
	m := metrics.New()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.Serve(l); err != nil {
			logger.Error("serving metrics stopped", "err", err)
		}
	}()
	logger.Info("metrics on http://" + l.Addr().String() + "/metrics")
	return m, func() { m.Close(); <-done }, nil
}

// notifySystemd tells systemd (Type=notify, $NOTIFY_SOCKET) the state of
// serve: "READY=1" once every listener accepts connections, "STOPPING=1"
// when a signal starts the shutdown. Without $NOTIFY_SOCKET it does
// nothing; a failure to send is logged, never fatal.
func notifySystemd(logger *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		logger.Warn("cannot notify systemd", "state", state, "err", err)
	}
}
