package admin

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hlfs/hlfs/lfs"
)

func TestCallUnreachable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.sock")
	err := Call(t.Context(), path, Request{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: "s"}, time.Second, nil)
	if !errors.Is(err, syscall.ENOENT) || !strings.Contains(err.Error(), "cannot reach "+path) {
		t.Errorf("Call to no socket: %v", err)
	}
	// A stale socket file: nobody listens.
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	err = Call(t.Context(), path, Request{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: "s"}, time.Second, nil)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Call to a stale socket: %v", err)
	}
}

// fakeServer answers every connection with reply after reading a line.
func fakeServer(t *testing.T, reply string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fake.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				readLine(conn)
				conn.Write([]byte(reply))
			}()
		}
	}()
	return path
}

func TestCallBadReplies(t *testing.T) {
	req := Request{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: "s"}
	for _, tc := range []struct{ reply, want string }{
		{"", "without replying"},
		{"garbage\n", "bad reply"},
		{"{}\n", "neither ok nor an error"},
		{`{"ok":false}` + "\n", "neither ok nor an error"},
		{`{"ok":true}`, "bad reply"}, // no newline: cut short
	} {
		err := Call(t.Context(), fakeServer(t, tc.reply), req, 5*time.Second, nil)
		var se *ServerError
		if err == nil || errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("reply %q: %v, want an error with %q", tc.reply, err, tc.want)
		}
	}
	// A request with a result needs one that decodes.
	var stats lfs.GCStats
	gc := Request{Op: OpGC, Volume: "vm1"}
	for _, tc := range []struct{ reply, want string }{
		{`{"ok":true}` + "\n", "no result"},
		{`{"ok":true,"result":null}` + "\n", "no result"},
		{`{"ok":true,"result":"many"}` + "\n", "bad reply"},
		{`{"ok":true,"result":{"passes":"one"}}` + "\n", "bad reply"},
	} {
		err := Call(t.Context(), fakeServer(t, tc.reply), gc, 5*time.Second, &stats)
		var se *ServerError
		if err == nil || errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("gc reply %q: %v, want an error with %q", tc.reply, err, tc.want)
		}
	}
	// A server that hangs up without replying.
	path := fakeServer(t, "")
	if err := Call(t.Context(), path, req, 5*time.Second, nil); err == nil || !strings.Contains(err.Error(), path+" closed the connection without replying") {
		t.Errorf("no reply: %v", err)
	}
	// An error reply wins over a stray ok.
	err := Call(t.Context(), fakeServer(t, `{"ok":true,"error":"no"}`+"\n"), req, 5*time.Second, nil)
	var se *ServerError
	if !errors.As(err, &se) || se.Msg != "no" {
		t.Errorf("error reply: %v", err)
	}
}

// A server that accepts but never replies: Call gives up at the timeout.
func TestCallTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mute.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err == nil {
			defer conn.Close()
			time.Sleep(2 * time.Second)
		}
	}()
	start := time.Now()
	err = Call(t.Context(), path, Request{Op: OpSnapshotCreate, Volume: "vm1", Snapshot: "s"}, 100*time.Millisecond, nil)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "within 100ms") {
		t.Errorf("Call to a mute server: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Call took %v", d)
	}
}
