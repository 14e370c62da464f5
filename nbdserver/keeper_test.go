package nbdserver

import (
	"bytes"
	"sync"
	"testing"
)

// keeperExport is a memExport that keeps every WRITE payload it is handed
// (PayloadKeeper) until the test releases them.
type keeperExport struct {
	*memExport
	mu   sync.Mutex
	kept [][]byte // the payloads as handed over
	want [][]byte // copies taken when they were handed over
	rel  []func()
}

func (e *keeperExport) WriteAtKeep(p []byte, off int64, fua bool, release func()) error {
	e.mu.Lock()
	e.kept = append(e.kept, p)
	e.want = append(e.want, bytes.Clone(p))
	e.rel = append(e.rel, release)
	e.mu.Unlock()
	return e.memExport.WriteAt(p, off, fua)
}

// TestKeptPayloadsAreNotReused: the server hands WRITE buffers to an export
// that keeps them and never reads into them again before the export
// releases them, however many writes follow; released buffers are reused.
func TestKeptPayloadsAreNotReused(t *testing.T) {
	exp := &keeperExport{memExport: newMemExport(1 << 20)}
	cat := newCatalog()
	cat.add("k", exp, ExportInfo{})
	ts := startServer(t, cat, Options{})
	c := connect(t, ts, "k", true, false)
	write := func(i int) {
		p := bytes.Repeat([]byte{byte(i)}, 64<<10)
		mustOK(t, c.writeAt(uint64(i%16)*(64<<10), p, 0))
	}
	check := func() {
		t.Helper()
		exp.mu.Lock()
		defer exp.mu.Unlock()
		for i := range exp.kept {
			if !bytes.Equal(exp.kept[i], exp.want[i]) {
				t.Fatalf("kept payload %d changed before its release", i)
			}
		}
	}
	for i := 0; i < 64; i++ {
		write(i)
	}
	check()
	exp.mu.Lock()
	for _, r := range exp.rel {
		r()
	}
	exp.kept, exp.want, exp.rel = nil, nil, nil
	exp.mu.Unlock()
	for i := 64; i < 128; i++ {
		write(i)
	}
	check()
	c.disconnect()
}
