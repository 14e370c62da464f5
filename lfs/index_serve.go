package lfs

import (
	"errors"
	"slices"
	"strings"

	"github.com/hlfs/hlfs/internal/objstore"
)

// A serve process that serves every volume of a store opens a volume only
// when a client asks for it, so a volume it does not have open names it in
// no owner lock. It records itself in its index object instead (the serve
// field, docs/format.md "Store index"), for 'hlfs attach' to find:
// RecordServer writes it, Servers reads the live ones back.

// ServeRecord is what a serve process records of itself in its index
// object.
type ServeRecord struct {
	// NBD are the URIs it listens on, as OwnerRecord.NBD.
	NBD []string `json:"nbd"`
	// WholeStore is true when it serves every volume of the store (opening
	// each on demand), false when it serves named volumes only.
	WholeStore bool `json:"whole_store"`
}

// Server is a serve process a store's index records, whose writer may
// still run (the index's liveness rule: pid and start time on this host,
// an object rewritten less than 2 minutes ago on another).
type Server struct {
	// Host and PID are the index writer's.
	Host string
	PID  int
	// Token is the writer's random token (its index object's name ends
	// with it): it tells apart two servers of one process.
	Token string
	ServeRecord
}

// RecordServer records rec in this process's index object of st (the
// Index OpenIndex opened for st, or for the store st wraps), or removes
// the record when rec is nil, and writes the object at once. While a
// record is there the object is rewritten every 30 s even with no volume
// open, so that other hosts see the writer alive. It fails when no Index
// is open for st or the object cannot be written.
func RecordServer(st objstore.Store, rec *ServeRecord) error {
	x := indexFor(st)
	if x == nil {
		return errors.New("lfs: no store index open for this store")
	}
	x.mu.Lock()
	if rec != nil {
		r := *rec
		r.NBD = slices.Clone(rec.NBD)
		rec = &r
	}
	x.mu.serve = rec
	x.mu.dirty = true
	x.mu.Unlock()
	return x.flush(false)
}

// Servers returns the serve processes recorded in st's index whose
// writers may still run, sorted by host, pid and token.
func Servers(st objstore.Store) ([]Server, error) {
	objs, alive, err := readIndexObjects(st)
	if err != nil {
		return nil, err
	}
	var out []Server
	for i, o := range objs {
		if o.Serve == nil || !alive[i] {
			continue
		}
		out = append(out, Server{Host: o.Writer.Host, PID: o.Writer.PID, Token: o.Writer.Token, ServeRecord: *o.Serve})
	}
	slices.SortFunc(out, func(a, b Server) int {
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		if a.PID != b.PID {
			return a.PID - b.PID
		}
		return strings.Compare(a.Token, b.Token)
	})
	return out, nil
}
