package main

import (
	"net"
	"strconv"
	"testing"
)

func TestServeMetricsListenErrors(t *testing.T) {
	store, dir := testStore(t)
	mustHLFS(t, store, "create", "demo", "--size", "1M")
	wantError(t, hlfs(t, store, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "host:", "demo"), 2,
		`serve: --metrics-listen "host:": no port in host:; want PORT or HOST:PORT`)

	// A bare port is loopback's: taken there, serve fails before it opens
	// any volume.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	wantError(t, hlfs(t, store, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", port, "demo"), 1,
		"cannot listen on 127.0.0.1:"+port+" for metrics", "address already in use")
	if info := statVolume(t, dir, "demo"); info.Owner != nil {
		t.Errorf("demo owned after serve failed: %+v", info.Owner)
	}
}
