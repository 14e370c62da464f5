package lfs

import (
	"slices"

	"github.com/hlfs/hlfs/internal/objstore"
)

// DataObjects returns the names of the store objects that hold vol's data:
// its segment objects, oldest first (several attempts of a segment in
// attempt order). Metadata (superblock, checkpoints, snapshot maps, owner
// lock) is left out, and so is data a clone reads from its ancestors'
// segments. hlfs locate asks the store where these objects lie.
func DataObjects(st objstore.Store, vol string) ([]string, error) {
	if err := ValidateName(vol); err != nil {
		return nil, err
	}
	if _, err := readSuperblock(st, vol); err != nil {
		return nil, err
	}
	seqs, attempts, err := segmentAttempts(st, vol)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, seq := range seqs {
		as := slices.Clone(attempts[seq])
		slices.Sort(as)
		for _, a := range as {
			names = append(names, segObjName(vol, seq, a))
		}
	}
	return names, nil
}
