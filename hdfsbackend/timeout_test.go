package hdfsbackend_test

import (
	"net"
	"testing"
	"time"

	"github.com/hlfs/hlfs/hdfsbackend"
	"github.com/stretchr/testify/require"
)

// TestHungNameNodeTimesOut points a Store at a listener that accepts and
// never answers, as a hung NameNode would: Open fails after
// Options.Timeout with ErrUnavailable instead of blocking.
func TestHungNameNodeTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, read nothing
		}
	}()
	t.Setenv("HADOOP_CONF_DIR", t.TempDir())
	start := time.Now()
	_, err = hdfsbackend.Open("hdfs://"+ln.Addr().String()+"/x", hdfsbackend.Options{Timeout: 300 * time.Millisecond})
	require.ErrorIs(t, err, hdfsbackend.ErrUnavailable)
	require.Less(t, time.Since(start), 5*time.Second)
	t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
}
