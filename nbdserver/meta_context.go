package nbdserver

import (
	"encoding/binary"
	"errors"
)

// The only metadata context served is base:allocation. Queries:
//
//	LIST, no queries             -> base:allocation
//	LIST, "base:" or the name    -> base:allocation
//	SET,  "base:allocation"      -> selected, id baseAllocCtxID
//	anything else                -> ignored (unknown namespaces and leaves
//	                                must be ignored, "base:" selects nothing)

// optMetaContext answers NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT.
func (c *conn) optMetaContext(neg *negotiation, opt uint32, data []byte) error {
	set := opt == optSetMetaContext
	if set {
		// SET replaces earlier selections even when it fails.
		neg.metaExport, neg.metaAlloc = "", false
		if !neg.structured {
			return c.optError(opt, repErrInvalid, "structured replies must be negotiated first")
		}
	}
	name, queries, ok := parseMetaRequest(data)
	if !ok {
		return c.optError(opt, repErrInvalid, "malformed meta context request")
	}
	if len(name) > maxStringLen {
		return c.optError(opt, repErrTooBig, "export name too long")
	}
	if _, _, err := c.srv.cat.Lookup(name); err != nil {
		if !errors.Is(err, ErrUnknownExport) {
			c.log.Warn("nbd: export lookup failed", "export", name, "err", err)
		}
		return c.optError(opt, repErrUnknown, lookupMessage(name, err))
	}

	match := false
	for _, q := range queries {
		if q == metaBaseAlloc || (!set && q == metaBaseSpace) {
			match = true
		}
	}
	if !set && len(queries) == 0 {
		match = true
	}
	if match {
		id := uint32(0) // LIST replies carry a reserved id of zero
		if set {
			id = baseAllocCtxID
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], id)
		if err := c.optReply(opt, repMetaContext, b[:], []byte(metaBaseAlloc)); err != nil {
			return err
		}
	}
	if set {
		neg.metaExport, neg.metaAlloc = name, match
	}
	return c.optReply(opt, repAck, nil)
}

// parseMetaRequest decodes LIST/SET_META_CONTEXT data: name length (4),
// name, query count (4), then count times query length (4) and query, and
// nothing after.
func parseMetaRequest(data []byte) (name string, queries []string, ok bool) {
	if len(data) < 8 {
		return "", nil, false
	}
	n := uint64(binary.BigEndian.Uint32(data[0:4]))
	if n > uint64(len(data)-8) {
		return "", nil, false
	}
	name = string(data[4 : 4+n])
	rest := data[4+n:]
	count := uint64(binary.BigEndian.Uint32(rest[0:4]))
	rest = rest[4:]
	if count > uint64(len(rest)/4) {
		return "", nil, false // each query needs at least its length
	}
	queries = make([]string, 0, count)
	for range count {
		if len(rest) < 4 {
			return "", nil, false
		}
		qn := uint64(binary.BigEndian.Uint32(rest[0:4]))
		if qn > uint64(len(rest)-4) {
			return "", nil, false
		}
		queries = append(queries, string(rest[4:4+qn]))
		rest = rest[4+qn:]
	}
	if len(rest) != 0 {
		return "", nil, false
	}
	return name, queries, true
}
