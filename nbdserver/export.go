package nbdserver

// Export is one block device served over NBD. The server calls it from many
// goroutines at once (requests on one connection run concurrently, and several
// connections may share one export), so implementations must be safe for
// concurrent use.
//
// The server validates every request before calling: off >= 0, length >= 0,
// off+length <= Size(). Buffers passed in are owned by the server and valid
// only for the duration of the call.
type Export interface {
	// Size returns the export size in bytes. It does not change while served.
	Size() int64
	// ReadAt fills all of p with the bytes at off. Holes read as zeros.
	ReadAt(p []byte, off int64) error
	// WriteAt stores p at off. With fua the data is durable when it returns.
	WriteAt(p []byte, off int64, fua bool) error
	// Zero makes [off, off+length) read as zeros. With punch the range is
	// deallocated (TRIM, or WRITE_ZEROES without NO_HOLE); without it the
	// implementation may still store zeros however it likes. With fua the
	// result is durable when it returns.
	Zero(off, length int64, punch, fua bool) error
	// Flush makes every write that completed before the call durable, on
	// this and every other connection (CAN_MULTI_CONN).
	Flush() error
	// Allocation reports [off, off+length) as consecutive runs, in order,
	// calling fn for each; hole runs read as zeros and use no storage.
	// It may stop early (fn sees a prefix of the range); the server asks again.
	Allocation(off, length int64, fn func(length int64, hole bool) error) error
}

// PayloadKeeper is implemented by exports that can keep a WRITE payload
// instead of copying it (lfs: in its in-memory log until the store has it).
// The server then hands the request buffer over and reuses it only once
// the export releases it.
type PayloadKeeper interface {
	// WriteAtKeep is WriteAt, except that the export may keep p after it
	// returns, unchanged, until it calls release: at most once, maybe
	// before it returns, from any goroutine (release must not block or
	// call into the export). A buffer never released is left to the
	// garbage collector.
	WriteAtKeep(p []byte, off int64, fua bool, release func()) error
}

// ExportInfo describes how an export is offered to clients.
type ExportInfo struct {
	// ReadOnly sets NBD_FLAG_READ_ONLY; writes, trims and zeroes get EPERM.
	ReadOnly bool
	// Description is sent in NBD_INFO_DESCRIPTION when non-empty.
	Description string
	// PreferredBlockSize is the volume's block size (power of two, 512..2 MiB).
	// Zero means 4096.
	PreferredBlockSize uint32
}

// Catalog finds exports by name. The server calls it from many goroutines.
type Catalog interface {
	// Names lists the export names in a stable order (NBD_OPT_LIST).
	Names() []string
	// Lookup returns the named export. It returns an error wrapping
	// ErrUnknownExport when there is no such export, or ErrExportRefused
	// when there is one that cannot be served now.
	Lookup(name string) (Export, ExportInfo, error)
}

// Releaser is implemented by a Catalog that wants to know when the server
// is done with an export, e.g. to close what nobody uses. For every Lookup
// that returned no error the server calls Release once, with the same name,
// after its last call into the export: at once after answering
// NBD_OPT_INFO, NBD_OPT_LIST_META_CONTEXT or NBD_OPT_SET_META_CONTEXT, and,
// when the lookup started transmission (NBD_OPT_GO, NBD_OPT_EXPORT_NAME),
// once the connection ended and its last request returned. Lookups that
// fail are not released. Shutdown returns only after every Release.
// transmitted says whether the lookup started transmission, so that a
// catalog can let go sooner of what was only probed (nbdinfo --list asks
// NBD_OPT_INFO of every export).
type Releaser interface {
	Release(name string, transmitted bool)
}
