package nbdserver

import (
	"encoding/binary"
	"slices"
	"strings"
)

// BitmapExport is an Export that also knows which of its bytes changed
// since earlier points of its history: each point is a dirty bitmap,
// served as the metadata context "qemu:dirty-bitmap:NAME" (QEMU's
// docs/interop/nbd.rst: one flag, bit 0 NBD_STATE_DIRTY). The server finds
// it by a type assertion on the Export a Catalog returns, and calls it
// concurrently, like the rest of the Export.
type BitmapExport interface {
	Export
	// DirtyBitmaps names the bitmaps offered, in a stable order. A name
	// is 1..maxStringLen-len("qemu:dirty-bitmap:") bytes; longer ones are
	// not offered.
	DirtyBitmaps() []string
	// Dirty reports [off, off+length) of the named bitmap as consecutive
	// runs, in order, calling fn for each: dirty runs changed since the
	// bitmap's point. It may stop early (fn sees a prefix of the range);
	// the server asks again. A bitmap that no longer exists is an error.
	Dirty(bitmap string, off, length int64, fn func(length int64, dirty bool) error) error
}

// Metadata contexts served and the queries that find them:
//
//	LIST, no queries                    -> base:allocation and every
//	                                       qemu:dirty-bitmap:NAME
//	LIST, "base:", "base:allocation"    -> base:allocation
//	LIST, "qemu:", "qemu:dirty-bitmap:" -> every qemu:dirty-bitmap:NAME
//	LIST or SET, "qemu:dirty-bitmap:N"  -> that bitmap, when offered
//	SET,  "base:allocation"             -> selected, id baseAllocCtxID
//	anything else                       -> ignored (unknown namespaces and
//	                                       leaves must be ignored; the
//	                                       wildcards select nothing in SET)
//
// SET gives base:allocation id 1 and the bitmaps ids 2, 3, ... in the order
// selected; BLOCK_STATUS then answers one chunk per selected context, in
// that order, the last flagged done.
const (
	metaQemuSpace    = "qemu:"
	metaBitmapPrefix = "qemu:dirty-bitmap:"
	// stateDirty is NBD_STATE_DIRTY, the one flag of a dirty bitmap.
	stateDirty = uint32(1 << 0)
	// maxMetaContexts bounds the contexts one SET may select.
	maxMetaContexts = 64
)

// metaContext is one selected context.
type metaContext struct {
	id     uint32
	bitmap string // "" for base:allocation
}

// metaSelection is what the last NBD_OPT_SET_META_CONTEXT selected.
type metaSelection struct {
	export string
	ctxs   []metaContext
}

// forExport returns the contexts selected for export name: none when
// they were selected for another export (they do not carry over) or
// structured replies are off.
func (m metaSelection) forExport(name string, structured bool) []metaContext {
	if !structured || m.export != name {
		return nil
	}
	return m.ctxs
}

// exportBitmaps returns the bitmaps exp offers (none unless it is a
// BitmapExport), without names too long to send.
func exportBitmaps(exp Export) []string {
	be, ok := exp.(BitmapExport)
	if !ok {
		return nil
	}
	var out []string
	for _, b := range be.DirtyBitmaps() {
		if b != "" && len(metaBitmapPrefix)+len(b) <= maxStringLen {
			out = append(out, b)
		}
	}
	return out
}

// matchContexts returns the contexts (bitmap "" = base:allocation) that the
// queries find among base:allocation and bitmaps, in query order, each
// once. list widens it to LIST's wildcards and its empty query list.
func matchContexts(queries, bitmaps []string, list bool) []string {
	var out []string
	add := func(names ...string) {
		for _, n := range names {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	allBitmaps := func() {
		for _, b := range bitmaps {
			add(metaBitmapPrefix + b)
		}
	}
	if list && len(queries) == 0 {
		add(metaBaseAlloc)
		allBitmaps()
	}
	for _, q := range queries {
		switch {
		case q == metaBaseAlloc, list && q == metaBaseSpace:
			add(metaBaseAlloc)
		case list && (q == metaQemuSpace || q == metaBitmapPrefix):
			allBitmaps()
		case strings.HasPrefix(q, metaBitmapPrefix) && slices.Contains(bitmaps, q[len(metaBitmapPrefix):]):
			add(q)
		}
	}
	return out
}

// optMetaContext answers NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT.
func (c *conn) optMetaContext(neg *negotiation, opt uint32, data []byte) error {
	set := opt == optSetMetaContext
	if set {
		// SET replaces earlier selections even when it fails.
		neg.meta = metaSelection{}
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
	exp, _, err := c.srv.lookup(c, name)
	if err != nil {
		return c.optError(opt, lookupReply(err), lookupMessage(name, err))
	}
	bitmaps := exportBitmaps(exp)
	c.srv.release(name, false)
	matches := matchContexts(queries, bitmaps, !set)
	if set && len(matches) > maxMetaContexts {
		return c.optError(opt, repErrTooBig, "too many metadata contexts selected")
	}
	var sel metaSelection
	nextID := baseAllocCtxID + 1
	for _, m := range matches {
		mc := metaContext{bitmap: strings.TrimPrefix(m, metaBitmapPrefix)}
		if m == metaBaseAlloc {
			mc.bitmap = ""
		}
		id := uint32(0) // LIST replies carry a reserved id of zero
		if set {
			id = baseAllocCtxID
			if mc.bitmap != "" {
				id = nextID
				nextID++
			}
			mc.id = id
			sel.ctxs = append(sel.ctxs, mc)
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], id)
		if err := c.optReply(opt, repMetaContext, b[:], []byte(m)); err != nil {
			return err
		}
	}
	if set {
		sel.export = name
		neg.meta = sel
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
