package lfs

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// A hand-off request is what a standby sends the owning process to ask
// for a volume (docs/design.md, "Roaming: standby exports and hand-off").
// It is authenticated with the owner lock's token: a random value written
// into the lock object at each acquisition (OwnerRecord.Token), which only
// processes that can read the store's owner locks know. The right to ask
// for a hand-off is thus the right to read the store, which already lets a
// process take a volume over once its lease runs out; the request adds
// only speed. A request names the owner's epoch, so it is good for one
// ownership only: once the volume moved, a captured request is refused.
//
// Layout (little-endian; part of the wire protocol, never change):
//
//	0   4  magic "HLHO"
//	4   2  version (1)
//	6   2  n, the length of the volume name
//	8   8  epoch of the owner lock the request is for
//	16  8  time the request was made, Unix nanoseconds
//	24  16 nonce, random
//	40  n  volume name
//	40+n 32 HMAC-SHA256 keyed with the owner's token over bytes [0, 40+n)
const (
	handOffMagic      = "HLHO"
	handOffVersion    = 1
	handOffHeaderLen  = 40
	handOffMACLen     = sha256.Size
	handOffMaxSkew    = 2 * time.Minute
	maxHandOffNameLen = 1 << 10
)

// ErrHandOffRefused is returned by AuthorizeHandOff and ServeHandOff for a
// request that does not decode, is not for this volume and ownership, is
// too old or too new, or fails its MAC.
var ErrHandOffRefused = errors.New("lfs: hand-off request refused")

// HandOffRequest asks the owner of Volume at Epoch to hand it over.
type HandOffRequest struct {
	Volume string
	Epoch  uint64
	Time   time.Time
	Nonce  [16]byte
	MAC    [handOffMACLen]byte
}

// NewHandOffRequest makes a request for vol to the owner whose lock record
// is owner (InUseError.Owner, or the record passed to RoamOptions.Ask).
func NewHandOffRequest(vol string, owner OwnerRecord) HandOffRequest {
	req := HandOffRequest{Volume: vol, Epoch: owner.Epoch, Time: time.Now()}
	_, _ = rand.Read(req.Nonce[:])
	copy(req.MAC[:], req.mac(owner.Token))
	return req
}

// header encodes everything the MAC covers.
func (r HandOffRequest) header() []byte {
	b := make([]byte, handOffHeaderLen, handOffHeaderLen+len(r.Volume)+handOffMACLen)
	copy(b[0:4], handOffMagic)
	binary.LittleEndian.PutUint16(b[4:6], handOffVersion)
	binary.LittleEndian.PutUint16(b[6:8], uint16(len(r.Volume)))
	binary.LittleEndian.PutUint64(b[8:16], r.Epoch)
	binary.LittleEndian.PutUint64(b[16:24], uint64(r.Time.UnixNano()))
	copy(b[24:40], r.Nonce[:])
	return append(b, r.Volume...)
}

func (r HandOffRequest) mac(token string) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write(r.header())
	return m.Sum(nil)
}

// Encode returns the request's bytes (layout above).
func (r HandOffRequest) Encode() []byte {
	return append(r.header(), r.MAC[:]...)
}

// DecodeHandOffRequest decodes b; it checks the layout, not the MAC.
func DecodeHandOffRequest(b []byte) (HandOffRequest, error) {
	var r HandOffRequest
	if len(b) < handOffHeaderLen+handOffMACLen || string(b[0:4]) != handOffMagic {
		return r, fmt.Errorf("%w: not a hand-off request (%d bytes)", ErrHandOffRefused, len(b))
	}
	if v := binary.LittleEndian.Uint16(b[4:6]); v != handOffVersion {
		return r, fmt.Errorf("%w: version %d, this binary speaks %d", ErrHandOffRefused, v, handOffVersion)
	}
	n := int(binary.LittleEndian.Uint16(b[6:8]))
	if n > maxHandOffNameLen || len(b) != handOffHeaderLen+n+handOffMACLen {
		return r, fmt.Errorf("%w: %d bytes for a %d-byte volume name", ErrHandOffRefused, len(b), n)
	}
	r.Epoch = binary.LittleEndian.Uint64(b[8:16])
	r.Time = time.Unix(0, int64(binary.LittleEndian.Uint64(b[16:24])))
	copy(r.Nonce[:], b[24:40])
	r.Volume = string(b[handOffHeaderLen : handOffHeaderLen+n])
	copy(r.MAC[:], b[handOffHeaderLen+n:])
	return r, nil
}

// verify checks r against the owner lock record rec of volume vol.
func (r HandOffRequest) verify(vol string, rec OwnerRecord, now time.Time) error {
	switch skew := now.Sub(r.Time); {
	case rec.Token == "":
		return fmt.Errorf("%w: %s: the owner lock has no token to check it with", ErrHandOffRefused, vol)
	case r.Volume != vol:
		return fmt.Errorf("%w: it is for volume %q, not %q", ErrHandOffRefused, r.Volume, vol)
	case r.Epoch != rec.Epoch:
		return fmt.Errorf("%w: %s: it is for epoch %d, this process owns epoch %d", ErrHandOffRefused, vol, r.Epoch, rec.Epoch)
	case skew > handOffMaxSkew || skew < -handOffMaxSkew:
		return fmt.Errorf("%w: %s: made at %s, %v away from this host's clock", ErrHandOffRefused, vol, r.Time.UTC().Format(time.RFC3339), skew)
	case !hmac.Equal(r.MAC[:], r.mac(rec.Token)):
		return fmt.Errorf("%w: %s: the MAC does not match this owner's token", ErrHandOffRefused, vol)
	}
	return nil
}

// ServeHandOff answers a hand-off request that reached this process (the
// owner) over serve's channel: it decodes and checks it (ErrHandOffRefused
// unless it names this volume and the epoch this process owns, was made
// within two minutes of now and carries the owner token's MAC), then hands
// the volume off (HandOff). The reply to the asker follows its return. A
// request that reaches a standby, or an owner of a later epoch, is refused:
// the asker reads the lock again and asks whoever owns the volume now.
func (r *Roaming) ServeHandOff(b []byte) error {
	req, err := DecodeHandOffRequest(b)
	if err != nil {
		return err
	}
	r.mu.RLock()
	var rec OwnerRecord
	owner := r.mu.owner && !r.mu.closed && r.mu.cur.owner != nil
	if owner {
		rec = r.mu.cur.owner.rec
	}
	r.mu.RUnlock()
	if !owner {
		return fmt.Errorf("%w: %s: this process does not own it", ErrHandOffRefused, r.name)
	}
	if err := req.verify(r.name, rec, time.Now()); err != nil {
		return err
	}
	return r.handOffEpoch(rec.Epoch)
}
