// Package admin is the small protocol by which hlfs commands reach a running
// "hlfs serve" to act on a volume it owns: creating and removing snapshots
// and cleaning the volume while it is served.
//
// The server listens on a Unix socket that only its user may use (mode
// 0600); the owner lock of every volume it serves records the socket's path
// (lfs.OwnerRecord.Admin), so a command finds the process to ask in the
// store. One connection carries one request and its reply, each a JSON
// object on one line:
//
//	→ {"op":"snapshot-create","volume":"vm1","snapshot":"s1"}
//	← {"ok":true}
//	← {"error":"snapshot vm1@s1 already exists"}
//
//	→ {"op":"gc","volume":"vm1","gc":{"max_utilization":0.8}}
//	← {"ok":true,"result":{"passes":1,"segments_cleaned":3,...}}
//
//	→ {"op":"scrub","volume":"vm1","scrub":{"rate":33554432}}
//	← {"ok":true,"result":{"records":12,"bytes_verified":49536,...}}
//
// The error is one line meant for people: the client prints it as is. A
// request that has a result (gc: the lfs.GCStats of the run; scrub: the
// lfs.ScrubReport) carries it in "result"; the others carry none.
//
// Listen starts a Server for a Handler; Call sends one request. A Server and
// Call are safe for concurrent use; the Handler is called from many
// goroutines at once.
package admin

import (
	"encoding/json"

	"github.com/hlfs/hlfs/lfs"
)

// Operations of a Request.
const (
	// OpSnapshotCreate creates snapshot Snapshot of volume Volume.
	OpSnapshotCreate = "snapshot-create"
	// OpSnapshotRemove removes snapshot Snapshot of volume Volume.
	OpSnapshotRemove = "snapshot-rm"
	// OpGC cleans volume Volume now, tuned by GC, and returns the
	// lfs.GCStats of the run. It takes no Snapshot.
	OpGC = "gc"
	// OpScrub verifies every byte volume Volume and its snapshots read,
	// tuned by Scrub, and returns the lfs.ScrubReport. It takes no
	// Snapshot.
	OpScrub = "scrub"
)

// Request is one request: an operation on a volume or on one of its
// snapshots.
type Request struct {
	// Op is one of the Op constants.
	Op string `json:"op"`
	// Volume names the volume, which the server must hold open.
	Volume string `json:"volume"`
	// Snapshot names the snapshot of Volume, for the snapshot operations.
	Snapshot string `json:"snapshot,omitempty"`
	// GC tunes OpGC; nil means the server's defaults. Only OpGC takes it.
	GC *GCOptions `json:"gc,omitempty"`
	// Scrub tunes OpScrub; nil means no rate bound. Only OpScrub takes it.
	Scrub *ScrubOptions `json:"scrub,omitempty"`
}

// ScrubOptions tune an OpScrub request.
type ScrubOptions struct {
	// Rate bounds the bytes read per second; 0 means no bound.
	Rate int64 `json:"rate,omitempty"`
}

// GCOptions tune an OpGC request, as lfs.GCOptions do a local run (without
// progress reports: the reply comes when the run is over). Zero values mean
// lfs's defaults.
type GCOptions struct {
	// Rate bounds the bytes copied per second; 0 means no bound.
	Rate int64 `json:"rate,omitempty"`
	// MaxUtilization: segments whose share of live bytes is higher are
	// left alone; from 0 to 1, and 0 means lfs's default.
	MaxUtilization float64 `json:"max_utilization,omitempty"`
	// Defrag bounds the bytes rewritten to defragment: 0 none, -1
	// (lfs.DefragAll) every fragmented window once.
	Defrag int64 `json:"defrag,omitempty"`
}

// response is the reply to a Request: OK, with the Result of requests that
// have one, or the Error of the request in one line.
type response struct {
	OK     bool            `json:"ok,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// Handler carries out requests. The server calls its methods from many
// goroutines at once, with names exactly as the client sent them (not
// validated: that is the handler's job). A returned error is sent to the
// client, which shows its message to a person: it should read well on its
// own (line breaks become "; ").
type Handler interface {
	// CreateSnapshot creates snapshot snap of volume vol and returns once
	// it is durable; it holds every write acknowledged before the call.
	CreateSnapshot(vol, snap string) error
	// DeleteSnapshot removes snapshot snap of volume vol.
	DeleteSnapshot(vol, snap string) error
	// GC cleans volume vol now and returns what the run did. opts are
	// checked: Rate is not negative, MaxUtilization is from 0 to 1.
	GC(vol string, opts GCOptions) (lfs.GCStats, error)
	// Scrub verifies volume vol now and returns what it found. opts are
	// checked: Rate is not negative.
	Scrub(vol string, opts ScrubOptions) (lfs.ScrubReport, error)
}

// maxMessage bounds the length of a request or reply line.
const maxMessage = 64 << 10
