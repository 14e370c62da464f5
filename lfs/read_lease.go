package lfs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
)

// A read lease (VOL/readers/<id>) tells the owner's cleaner that a
// read-only open (export, fsck, du, snapshot ls, clone) reads the volume
// through maps it loaded when it opened: while a lease is fresh, the
// cleaner deletes no segment, so those maps stay readable. A reader renews
// its lease every readLeaseRenew and removes it at Close; one a crashed
// reader left goes stale after readLeaseTTL.
const (
	readLeaseRenew = 20 * time.Second
	readLeaseTTL   = 90 * time.Second
)

func readersDir(vol string) string { return path.Join(vol, "readers") }

// readLeaseRecord is the content of a read lease (docs/format.md).
type readLeaseRecord struct {
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Renewed time.Time `json:"renewed"`
}

type readLease struct {
	st   objstore.Store
	name string
	stop chan struct{}
	wg   sync.WaitGroup
}

// takeReadLease writes a read lease for vol and renews it until release.
func takeReadLease(st objstore.Store, vol string) (*readLease, error) {
	l := &readLease{st: st, name: path.Join(readersDir(vol), fmt.Sprintf("%016x", newUID())), stop: make(chan struct{})}
	if err := l.write(); err != nil {
		return nil, err
	}
	// A lapse only lets the cleaner delete sooner.
	runEvery(&l.wg, l.stop, readLeaseRenew, nil, func() { _ = l.write() })
	return l, nil
}

func (l *readLease) write() error {
	b, err := json.Marshal(readLeaseRecord{Host: hostname(), PID: os.Getpid(), Renewed: time.Now().UTC()})
	if err != nil {
		return err
	}
	return replaceObject(l.st, l.name, b)
}

func (l *readLease) release() {
	if l == nil {
		return
	}
	close(l.stop)
	l.wg.Wait()
	_ = l.st.Remove(l.name)
}

// readersActive reports whether a fresh read lease exists on the volume,
// and removes stale ones (and temporaries a crash left).
func (v *Volume) readersActive() (bool, error) {
	names, err := v.st.List(readersDir(v.name))
	if err != nil {
		return false, err
	}
	active := false
	for _, n := range names {
		name := path.Join(readersDir(v.name), n)
		b, err := readObject(v.st, name)
		if errors.Is(err, objstore.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, err
		}
		var rec readLeaseRecord
		switch fresh := json.Unmarshal(b, &rec) == nil && time.Since(rec.Renewed) < readLeaseTTL; {
		case fresh && strings.Contains(n, ".tmp-"): // being renamed into place
		case fresh:
			active = true
		default:
			_ = v.st.Remove(name)
		}
	}
	return active, nil
}
