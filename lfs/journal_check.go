package lfs

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"

	"github.com/hlfs/hlfs/internal/objstore"
)

// journalMarker is the object a write-back journal (package
// internal/journal) writes in a volume's folder while it holds segments of
// the volume that the store does not have yet. Its content is JSON naming
// the host and directory.
const journalMarker = "journal"

// journalHolder is implemented by a store that is a write-back journal: it
// tells whether the pending marker of a volume is its own.
type journalHolder interface {
	HasJournal(vol string) bool
}

// checkJournal refuses to open a volume whose newest data may sit in a
// journal on some host, unless st is that journal: opening it elsewhere would
// silently show an older volume.
func checkJournal(st objstore.Store, vol string) error {
	b, err := readObject(st, path.Join(vol, journalMarker))
	if errors.Is(err, objstore.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if j, ok := st.(journalHolder); ok && j.HasJournal(vol) {
		return nil
	}
	var m struct {
		Host string `json:"host"`
		Dir  string `json:"dir"`
		PID  int    `json:"pid"`
	}
	if err := json.Unmarshal(b, &m); err != nil || m.Dir == "" {
		return fmt.Errorf("%w: %s (unreadable marker %s)", ErrJournalPending, vol, path.Join(vol, journalMarker))
	}
	return fmt.Errorf("%w: %s: the journal %s on host %s (last served by pid %d) holds data not yet in the store; serve %s there with --journal %s to ship it, then open it anywhere",
		ErrJournalPending, vol, m.Dir, m.Host, m.PID, vol, m.Dir)
}
