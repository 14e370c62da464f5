// Package admin is the small protocol by which hlfs commands reach a running
// "hlfs serve" to act on a volume it owns: creating and removing snapshots
// while the volume is served.
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
// The error is one line meant for people: the client prints it as is.
//
// Listen starts a Server for a Handler; Call sends one request. A Server and
// Call are safe for concurrent use; the Handler is called from many
// goroutines at once.
package admin

// Operations of a Request.
const (
	// OpSnapshotCreate creates snapshot Snapshot of volume Volume.
	OpSnapshotCreate = "snapshot-create"
	// OpSnapshotRemove removes snapshot Snapshot of volume Volume.
	OpSnapshotRemove = "snapshot-rm"
)

// Request is one request: an operation on a volume's snapshot.
type Request struct {
	// Op is one of the Op constants.
	Op string `json:"op"`
	// Volume names the volume, which the server must hold open.
	Volume string `json:"volume"`
	// Snapshot names the snapshot of Volume.
	Snapshot string `json:"snapshot"`
}

// response is the reply to a Request: OK, or the Error of the request in one
// line.
type response struct {
	OK    bool   `json:"ok,omitempty"`
	Error string `json:"error,omitempty"`
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
}

// maxMessage bounds the length of a request or reply line.
const maxMessage = 64 << 10
