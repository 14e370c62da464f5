package nbdserver

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHandOffOption: RequestHandOff reaches Options.HandOff with the
// request's bytes and reports its answer; a server without the hook says
// it is unsupported; under TLSRequire it works only after STARTTLS.
func TestHandOffOption(t *testing.T) {
	cat, _, _ := twoExports()
	var mu sync.Mutex
	var got [][]byte
	answer := error(nil)
	ts := startServer(t, cat, Options{HandOff: func(req []byte) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, bytes.Clone(req))
		return answer
	}})
	ctx := context.Background()
	req := []byte("HLHO request bytes")
	if err := RequestHandOff(ctx, "tcp", ts.addr, req, nil); err != nil {
		t.Fatalf("RequestHandOff: %v", err)
	}
	answer = errors.New("lfs: hand-off request refused: vm1: it is for epoch 3, this process owns epoch 4")
	err := RequestHandOff(ctx, "tcp", ts.addr, req, nil)
	if err == nil || !strings.Contains(err.Error(), "refused: lfs: hand-off request refused: vm1: it is for epoch 3") {
		t.Errorf("refused request: %v", err)
	}
	mu.Lock()
	if len(got) != 2 || !bytes.Equal(got[0], req) || !bytes.Equal(got[1], req) {
		t.Errorf("the hook saw %q", got)
	}
	mu.Unlock()
	// The connections ended politely: the server still serves.
	c := dial(t, ts)
	c.greet(clientFlagFixedNewstyle)
	c.sendOpt(optList, nil)
	if r := c.readOptReply(optList); r.typ != repServer {
		t.Errorf("LIST after hand-off requests: reply %#x", r.typ)
	}

	plain := startServer(t, cat, Options{})
	if err := RequestHandOff(ctx, "tcp", plain.addr, req, nil); !errors.Is(err, ErrHandOffUnsupported) {
		t.Errorf("server without the hook: %v, want ErrHandOffUnsupported", err)
	}

	p := newPKI(t)
	var calls atomic.Int32
	tlsSrv := startServer(t, cat, Options{TLS: p.tlsOptions(t, TLSRequire, false),
		HandOff: func([]byte) error { calls.Add(1); return nil }})
	if err := RequestHandOff(ctx, "tcp", tlsSrv.addr, req, nil); err == nil || !strings.Contains(err.Error(), "requires TLS") || calls.Load() != 0 {
		t.Errorf("clear request to a TLS-only server: %v (%d calls)", err, calls.Load())
	}
	if err := RequestHandOff(ctx, "tcp", tlsSrv.addr, req, p.clientConfig(p.client)); err != nil || calls.Load() != 1 {
		t.Errorf("request over TLS: %v (%d calls)", err, calls.Load())
	}
}

// TestHandOffRequestTimesOut: a peer that never greets does not hold the
// asker longer than its context.
func TestHandOffRequestTimesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = RequestHandOff(ctx, "tcp", l.Addr().String(), []byte("x"), nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("RequestHandOff to a silent peer: %v after %v", err, time.Since(start))
	}
}
