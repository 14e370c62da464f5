package lfs

import (
	"errors"
	"fmt"
	"io"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
)

// readSegmentFrom reads segment seq (one attempt) as readWholeSegment does,
// but of its bytes before from only the header: replay starts at the
// checkpoint's position and looks at nothing before it, so a read-only open
// right after a burst of writes does not read them all again (an
// incremental backup then reads little more than what changed). The bytes
// in between read as zeros; the buffer has the object's length.
func readSegmentFrom(st objstore.Store, vol string, sb superblock, seq uint64, attempt int, from int64) ([]byte, error) {
	name := segObjName(vol, seq, attempt)
	r, err := st.Open(name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	size := r.Size()
	if from <= segment.SegmentHeaderLen || size <= segment.SegmentHeaderLen {
		return readWholeSegment(st, vol, sb, seq, attempt)
	}
	buf := make([]byte, size)
	read := func(p []byte, off int64) error {
		n, err := r.ReadAt(p, off)
		if errors.Is(err, io.EOF) && n == len(p) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("lfs: read %s: %w", name, err)
		}
		return nil
	}
	if err := read(buf[:segment.SegmentHeaderLen], 0); err != nil {
		return nil, err
	}
	if from < size {
		if err := read(buf[from:], from); err != nil {
			return nil, err
		}
	}
	if err := checkSegmentHeader(name, buf, sb, seq); err != nil {
		return nil, err
	}
	return buf, nil
}
