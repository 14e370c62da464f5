package nbdserver

import (
	"encoding/binary"
	"errors"
)

// blockStatus answers NBD_CMD_BLOCK_STATUS for base:allocation with one
// NBD_REPLY_TYPE_BLOCK_STATUS chunk flagged done. With NBD_CMD_FLAG_REQ_ONE
// the chunk holds one descriptor; otherwise at most maxExtents, which may
// cover only a prefix of the request (the client asks again).
func (c *conn) blockStatus(s *session, req request) error {
	limit := maxExtents
	if req.flags&cmdFlagReqOne != 0 {
		limit = 1
	}
	buf := getBuf(blockStatusHeadSize + blockStatusDescSize*limit)
	defer putBuf(buf)
	p := (*buf)[:blockStatusHeadSize]
	binary.BigEndian.PutUint32(p, baseAllocCtxID)
	p, err := appendExtents(p, s.exp, int64(req.offset), int64(req.length), limit)
	if err != nil {
		return err
	}
	c.w.chunk(req.cookie, chunkBlockStatus, p)
	return nil
}

// appendExtents appends base:allocation descriptors (length, flags: 4 bytes
// each, big-endian) for [off, off+length) to dst and returns it. Holes get
// NBD_STATE_HOLE|NBD_STATE_ZERO, data 0. Adjacent runs of one kind are
// merged; at most limit descriptors are produced, covering a prefix of the
// range (at least one byte; length must be positive and below 2^32).
//
// Export.Allocation may stop early; it is asked again from where it
// stopped. Runs that are empty or overrun the range, or a call that makes
// no progress, fail with errBadExtent.
func appendExtents(dst []byte, exp Export, off, length int64, limit int) ([]byte, error) {
	base := len(dst)
	count := 0
	var last uint32
	var covered int64
	for covered < length {
		before := covered
		err := exp.Allocation(off+covered, length-covered, func(n int64, hole bool) error {
			if n <= 0 || n > length-covered {
				return errBadExtent
			}
			var flags uint32
			if hole {
				flags = stateHole | stateZero
			}
			if count > 0 && flags == last {
				i := len(dst) - blockStatusDescSize
				binary.BigEndian.PutUint32(dst[i:], binary.BigEndian.Uint32(dst[i:])+uint32(n))
			} else {
				if count == limit {
					return errStopExtents
				}
				dst = binary.BigEndian.AppendUint32(dst, uint32(n))
				dst = binary.BigEndian.AppendUint32(dst, flags)
				count++
				last = flags
			}
			covered += n
			return nil
		})
		if errors.Is(err, errStopExtents) {
			break
		}
		if err != nil {
			return dst[:base], err
		}
		if covered == before {
			return dst[:base], errBadExtent
		}
	}
	return dst, nil
}
