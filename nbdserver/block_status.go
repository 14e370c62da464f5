package nbdserver

import (
	"encoding/binary"
	"errors"
)

// statusFunc reports [off, off+length) of one metadata context as
// consecutive runs with their status flags, like Export.Allocation: it may
// stop early.
type statusFunc func(off, length int64, fn func(n int64, flags uint32) error) error

// allocationStatus is base:allocation: holes are HOLE|ZERO, data 0.
func allocationStatus(exp Export) statusFunc {
	return func(off, length int64, fn func(int64, uint32) error) error {
		return exp.Allocation(off, length, func(n int64, hole bool) error {
			if hole {
				return fn(n, stateHole|stateZero)
			}
			return fn(n, 0)
		})
	}
}

// bitmapStatus is qemu:dirty-bitmap:NAME: changed runs are DIRTY.
func bitmapStatus(exp Export, bitmap string) statusFunc {
	return func(off, length int64, fn func(int64, uint32) error) error {
		be, ok := exp.(BitmapExport)
		if !ok {
			return errNoBitmaps
		}
		return be.Dirty(bitmap, off, length, func(n int64, dirty bool) error {
			if dirty {
				return fn(n, stateDirty)
			}
			return fn(n, 0)
		})
	}
}

// blockStatus answers NBD_CMD_BLOCK_STATUS with one
// NBD_REPLY_TYPE_BLOCK_STATUS chunk per selected context, in the order
// selected, the last flagged done. With NBD_CMD_FLAG_REQ_ONE each chunk
// holds one descriptor; otherwise at most maxExtents, which may cover only
// a prefix of the request (the client asks again). Every chunk is computed
// before any is sent, so a failure is one error reply.
func (c *conn) blockStatus(s *session, req request) error {
	limit := maxExtents
	if req.flags&cmdFlagReqOne != 0 {
		limit = 1
	}
	payloads := make([][]byte, 0, len(s.meta))
	for _, mc := range s.meta {
		buf := getBuf(blockStatusHeadSize + blockStatusDescSize*limit)
		defer putBuf(buf)
		p := (*buf)[:blockStatusHeadSize]
		binary.BigEndian.PutUint32(p, mc.id)
		status := allocationStatus(s.exp)
		if mc.bitmap != "" {
			status = bitmapStatus(s.exp, mc.bitmap)
		}
		p, err := appendStatus(p, status, int64(req.offset), int64(req.length), limit)
		if err != nil {
			return err
		}
		payloads = append(payloads, p)
	}
	c.w.statusChunks(req.cookie, payloads)
	return nil
}

// statusChunks sends one block status chunk per payload, the last flagged
// done, together under the writer's lock.
func (w *replyWriter) statusChunks(cookie uint64, payloads [][]byte) {
	w.lock()
	for i, p := range payloads {
		flags := uint16(0)
		if i == len(payloads)-1 {
			flags = chunkFlagDone
		}
		putChunkHeader(w.mu.hdr[:], flags, chunkBlockStatus, cookie, uint32(len(p)))
		w.writeLocked(w.mu.hdr[:chunkHeaderSize])
		w.writeLocked(p)
	}
	w.unlock()
}

// appendExtents appends the base:allocation descriptors of exp for
// [off, off+length) (appendStatus).
func appendExtents(dst []byte, exp Export, off, length int64, limit int) ([]byte, error) {
	return appendStatus(dst, allocationStatus(exp), off, length, limit)
}

// appendStatus appends descriptors (length, flags: 4 bytes each,
// big-endian) for [off, off+length) to dst and returns it. Adjacent runs
// with the same flags are merged; at most limit descriptors are produced,
// covering a prefix of the range (at least one byte; length must be
// positive and below 2^32), so their lengths are nonzero and sum to at
// most length.
//
// status may stop early; it is asked again from where it stopped. Runs
// that are empty or overrun the range, or a call that makes no progress,
// fail with errBadExtent.
func appendStatus(dst []byte, status statusFunc, off, length int64, limit int) ([]byte, error) {
	base := len(dst)
	count := 0
	var last uint32
	var covered int64
	for covered < length {
		before := covered
		err := status(off+covered, length-covered, func(n int64, flags uint32) error {
			if n <= 0 || n > length-covered {
				return errBadExtent
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
