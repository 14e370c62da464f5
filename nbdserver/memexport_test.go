package nbdserver

import (
	"fmt"
	"sync"
)

// memSector is the allocation granularity of memExport.
const memSector = 512

var _ Export = (*memExport)(nil)

// memCall records one mutating call made on a memExport.
type memCall struct {
	op         string // "write", "zero", "flush"
	off, n     int64
	fua, punch bool
}

// memExport is an in-memory Export: a flat []byte plus a per-sector
// allocation map (a sector is allocated once any byte of it is written;
// punching deallocates the sectors the range covers fully). It records
// mutating calls, and tests can inject errors and block calls.
type memExport struct {
	// fail, if set, is consulted before every call; a non-nil result is
	// returned instead of doing the call.
	fail func(op string, off, n int64) error
	// hook, if set, runs before every call (it may block).
	hook func(op string, off, n int64)
	// maxRun, if positive, makes Allocation stop after reporting that many
	// bytes, exercising the server's "ask again" path.
	maxRun int64

	// mu guards the contents and the record; no blocking under it.
	mu struct {
		sync.Mutex
		data  []byte
		alloc []bool
		calls []memCall
	}
}

// newMemExport returns a sparse export of size bytes, all holes.
func newMemExport(size int64) *memExport {
	e := &memExport{}
	e.mu.data = make([]byte, size)
	e.mu.alloc = make([]bool, (size+memSector-1)/memSector)
	return e
}

func (e *memExport) before(op string, off, n int64) error {
	if e.hook != nil {
		e.hook(op, off, n)
	}
	if e.fail != nil {
		return e.fail(op, off, n)
	}
	return nil
}

// check enforces the Export contract the server promises.
func (e *memExport) check(off, n int64) {
	if off < 0 || n < 0 || off+n > int64(len(e.mu.data)) {
		panic(fmt.Sprintf("memExport: server broke the contract: off %d n %d size %d", off, n, len(e.mu.data)))
	}
}

func (e *memExport) Size() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return int64(len(e.mu.data))
}

func (e *memExport) ReadAt(p []byte, off int64) error {
	if err := e.before("read", off, int64(len(p))); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.check(off, int64(len(p)))
	copy(p, e.mu.data[off:])
	return nil
}

func (e *memExport) WriteAt(p []byte, off int64, fua bool) error {
	if err := e.before("write", off, int64(len(p))); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.check(off, int64(len(p)))
	copy(e.mu.data[off:], p)
	e.setAllocLocked(off, int64(len(p)), true, false)
	e.mu.calls = append(e.mu.calls, memCall{op: "write", off: off, n: int64(len(p)), fua: fua})
	return nil
}

func (e *memExport) Zero(off, n int64, punch, fua bool) error {
	if err := e.before("zero", off, n); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.check(off, n)
	clear(e.mu.data[off : off+n])
	if punch {
		e.setAllocLocked(off, n, false, true)
	} else {
		e.setAllocLocked(off, n, true, false)
	}
	e.mu.calls = append(e.mu.calls, memCall{op: "zero", off: off, n: n, fua: fua, punch: punch})
	return nil
}

// setAllocLocked marks the sectors [off, off+n) touches (or, with whole,
// only those it covers completely).
func (e *memExport) setAllocLocked(off, n int64, v, whole bool) {
	if n == 0 {
		return
	}
	first, end := off/memSector, (off+n+memSector-1)/memSector
	if whole {
		first = (off + memSector - 1) / memSector
		end = (off + n) / memSector
		if off+n == int64(len(e.mu.data)) {
			end = int64(len(e.mu.alloc)) // a short final sector counts as covered
		}
	}
	for i := first; i < end; i++ {
		e.mu.alloc[i] = v
	}
}

func (e *memExport) Flush() error {
	if err := e.before("flush", 0, 0); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mu.calls = append(e.mu.calls, memCall{op: "flush"})
	return nil
}

func (e *memExport) Allocation(off, length int64, fn func(length int64, hole bool) error) error {
	if err := e.before("allocation", off, length); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.check(off, length)
	end := off + length
	reported := int64(0)
	for off < end {
		hole := !e.mu.alloc[off/memSector]
		runEnd := off
		for runEnd < end && !e.mu.alloc[runEnd/memSector] == hole {
			runEnd = min((runEnd/memSector+1)*memSector, end)
		}
		n := runEnd - off
		if e.maxRun > 0 && reported+n > e.maxRun {
			n = max(e.maxRun-reported, 1)
		}
		if err := fn(n, hole); err != nil {
			return err
		}
		off += n
		reported += n
		if e.maxRun > 0 && reported >= e.maxRun {
			return nil
		}
	}
	return nil
}

// bytes returns a copy of [off, off+n).
func (e *memExport) bytes(off, n int64) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]byte(nil), e.mu.data[off:off+n]...)
}

// calls returns the mutating calls so far.
func (e *memExport) calls() []memCall {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]memCall(nil), e.mu.calls...)
}

// allocated reports whether the sector holding off is allocated.
func (e *memExport) allocated(off int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mu.alloc[off/memSector]
}

var (
	_ Catalog  = (*memCatalog)(nil)
	_ Releaser = (*memCatalog)(nil)
)

// memCatalog serves a fixed set of exports. It counts the lookups not yet
// released, per name.
type memCatalog struct {
	names   []string
	exports map[string]Export
	infos   map[string]ExportInfo
	// fail, if set, makes Lookup of that name fail with this error.
	fail map[string]error

	// mu guards held (lookups not released) and transmitted (releases
	// after a transmission), by name.
	mu struct {
		sync.Mutex
		held, transmitted map[string]int
	}
}

// newCatalog builds a catalog; add exports with add.
func newCatalog() *memCatalog {
	c := &memCatalog{exports: map[string]Export{}, infos: map[string]ExportInfo{}, fail: map[string]error{}}
	c.mu.held, c.mu.transmitted = map[string]int{}, map[string]int{}
	return c
}

// Release implements Releaser.
func (c *memCatalog) Release(name string, transmitted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.held[name]--
	if transmitted {
		c.mu.transmitted[name]++
	}
	if c.mu.held[name] < 0 {
		panic("nbdserver: Release of " + name + " without a Lookup")
	}
}

// held returns the lookups of name not yet released.
func (c *memCatalog) held(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.held[name]
}

// transmitted returns the releases of name after a transmission.
func (c *memCatalog) transmitted(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.transmitted[name]
}

// add registers e under name and returns e.
func (c *memCatalog) add(name string, e Export, info ExportInfo) Export {
	c.names = append(c.names, name)
	c.exports[name] = e
	c.infos[name] = info
	return e
}

func (c *memCatalog) Names() []string { return c.names }

func (c *memCatalog) Lookup(name string) (Export, ExportInfo, error) {
	if err := c.fail[name]; err != nil {
		return nil, ExportInfo{}, err
	}
	e, ok := c.exports[name]
	if !ok {
		return nil, ExportInfo{}, fmt.Errorf("lookup %q: %w", name, ErrUnknownExport)
	}
	c.mu.Lock()
	c.mu.held[name]++
	c.mu.Unlock()
	return e, c.infos[name], nil
}
