package hdfsbackend_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/hlfs/hlfs/hdfsbackend"
	"github.com/hlfs/hlfs/hdfsbackend/hdfstest"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// These tests stop and start parts of the shared mini-cluster; each puts
// every node back before it returns.

// TestDataNodeStoppedDuringWrite stops a DataNode under an open writer.
// The library cannot rebuild a write pipeline, so that writer may fail
// (with a sticky error); objects created afterwards are written to the two
// DataNodes left and read back, and so are the objects written before.
func TestDataNodeStoppedDuringWrite(t *testing.T) {
	s := hdfstest.NewStore(t, hdfsbackend.Options{})
	before := randomBytes(3, 6<<20)
	writeObject(t, s, "before", before)

	w, err := s.Create("inflight")
	require.NoError(t, err)
	_, err = w.Write(randomBytes(4, 1<<20))
	require.NoError(t, err)

	hdfstest.MustControl(t, "stop-datanode 0")
	t.Cleanup(func() { hdfstest.MustControl(t, "restart-datanode 0") })

	_, werr := w.Write(randomBytes(5, 4<<20))
	cerr := w.Close()
	t.Logf("writer open across the stop: write: %v; close: %v", werr, cerr)
	if werr != nil {
		require.Equal(t, werr, cerr, "the write error is sticky")
	}

	for i := range 3 {
		name := fmt.Sprintf("after-%d", i)
		data := randomBytes(int64(10+i), 5<<20+i)
		writeObject(t, s, name, data)
		require.True(t, bytes.Equal(data, readObject(t, s, name)), name)
	}
	require.True(t, bytes.Equal(before, readObject(t, s, "before")),
		"an object written before the stop reads from the remaining replicas")
}

// TestDataNodeStoppedUnnoticed stops a DataNode without telling the
// NameNode, which keeps placing blocks on it until its heartbeats are
// overdue (12 s with the mini-cluster's settings; 10.5 min by default).
// New objects fail until then and succeed after, with the same Store.
func TestDataNodeStoppedUnnoticed(t *testing.T) {
	s := hdfstest.NewStore(t, hdfsbackend.Options{})
	hdfstest.MustControl(t, "stop-datanode 1 nomark")
	t.Cleanup(func() { hdfstest.MustControl(t, "restart-datanode 1") })

	start := time.Now()
	var failures int
	for i := 0; ; i++ {
		name := fmt.Sprintf("obj-%d", i)
		data := randomBytes(int64(i), 1<<20)
		w, err := s.Create(name)
		require.NoError(t, err, "create needs only the NameNode")
		_, err = w.Write(data)
		if err == nil {
			err = w.Close()
		} else {
			w.Close()
		}
		if err == nil {
			require.True(t, bytes.Equal(data, readObject(t, s, name)))
			break
		}
		failures++
		if failures == 1 {
			t.Logf("first failure: %v", err)
		}
		require.Less(t, time.Since(start), 90*time.Second, "writes still fail: %v", err)
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("writes failed %d times for %v, then succeeded", failures, time.Since(start).Round(time.Millisecond))
}

// TestNameNodeRestart stops the NameNode: calls fail at once with an
// ErrUnavailable error that names the object; once it is back the same
// Store works again without being reopened.
func TestNameNodeRestart(t *testing.T) {
	s := hdfstest.NewStore(t, hdfsbackend.Options{Timeout: 10 * time.Second})
	data := randomBytes(6, 2<<20)
	writeObject(t, s, "v/seg/1", data)
	r, err := s.Open("v/seg/1") // opened before the restart, read after it
	require.NoError(t, err)
	defer r.Close()

	hdfstest.MustControl(t, "stop-namenode")
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			hdfstest.MustControl(t, "start-namenode")
		}
	})

	checkDown := func(what string, err error) {
		t.Helper()
		require.Error(t, err, what)
		require.ErrorIs(t, err, hdfsbackend.ErrUnavailable, what)
		require.Contains(t, err.Error(), "namenode unreachable")
		require.NotContains(t, err.Error(), "\n")
		t.Logf("%s while the namenode is down: %v", what, err)
	}
	for range 2 { // the second round sees the pool's state after the first
		start := time.Now()
		_, err := s.Create("v/seg/2")
		checkDown("create", err)
		_, err = s.Open("v/seg/1")
		checkDown("open", err)
		_, err = s.List("v/seg")
		checkDown("list", err)
		checkDown("rename", s.Rename("v/seg/1", "v/seg/3"))
		checkDown("remove", s.Remove("v/seg/1"))
		checkDown("persist", s.Persist("v/seg/1"))
		require.Less(t, time.Since(start), 5*time.Second, "a refused connection fails fast")
		time.Sleep(time.Second)
	}

	hdfstest.MustControl(t, "start-namenode")
	restarted = true

	// The first call after the restart already succeeds.
	w, err := s.Create("v/seg/2")
	require.NoError(t, err)
	_, err = w.Write([]byte("after restart"))
	require.NoError(t, err)
	require.NoError(t, objstore.CloseDurably(w))
	require.Equal(t, "after restart", string(readObject(t, s, "v/seg/2")))
	names, err := s.List("v/seg")
	require.NoError(t, err)
	require.Equal(t, []string{"1", "2"}, names)
	require.True(t, bytes.Equal(data, readObject(t, s, "v/seg/1")))
	buf := make([]byte, 1000)
	n, err := r.ReadAt(buf, 1<<20)
	require.NoError(t, err)
	require.Equal(t, data[1<<20:1<<20+n], buf[:n], "a Reader opened before the restart")
	require.NoError(t, s.Persist("v/seg/2"))
}

// TestNameNodeRestartIdle restarts the NameNode while the Store is idle:
// its pooled connections died unnoticed, and the first calls afterwards
// must still succeed.
func TestNameNodeRestartIdle(t *testing.T) {
	s := hdfstest.NewStore(t, hdfsbackend.Options{Clients: 3})
	for i := range 6 { // touch every pooled client
		writeObject(t, s, fmt.Sprintf("o%d", i), []byte{byte(i)})
	}
	hdfstest.MustControl(t, "restart-namenode")
	for i := range 6 {
		got := readObject(t, s, fmt.Sprintf("o%d", i))
		require.Equal(t, []byte{byte(i)}, got)
	}
	writeObject(t, s, "new", []byte("x"))
}
