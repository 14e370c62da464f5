package objstore

// Recycler is implemented by stores that can write a new object over the
// storage of a removed one (DirStore): a log writer that overwrites the
// file of a segment the cleaner deleted reuses its disk blocks and its
// cached pages instead of allocating new ones, which on this project's VMs
// is twice as fast per byte as writing a new file (bench/README.md). The
// idea is RocksDB's recycled log files.
//
// The price is stale bytes: an object created on a recycled one holds the
// old object's bytes past those written so far, until Close; after a crash
// before Close, any byte not yet synced may be stale (Open shows them too,
// past what was written). A caller recycles only objects whose stale bytes
// it can tell from its own (lfs: records checksummed with their segment's
// seq, docs/format.md "Recycled segment files").
type Recycler interface {
	// Recycle moves the closed object name into folder pool (named there
	// after its last element) instead of removing it; name is gone, durably,
	// on return, as after Remove. ErrNotExist when name is absent, ErrExist
	// when pool already holds an object of that name.
	Recycle(name, pool string) error
	// CreateRecycled creates name as Create does (ErrExist when it exists:
	// fencing holds), on one object of folder pool when pool has one
	// (recycled is then true and that object is gone from pool), else as a
	// new object. A recycled object is written over from offset 0; Close
	// cuts it to the bytes written and makes them durable, so once closed
	// it is complete and durable and has no stale tail on any store.
	CreateRecycled(name, pool string) (w Writer, recycled bool, err error)
}
