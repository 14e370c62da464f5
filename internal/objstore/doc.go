// Package objstore is the seam between hlfs and the place its objects live: a
// local directory (DirStore), memory (MemStore, with error injection and crash
// simulation for tests) and, in package hdfsbackend, HDFS.
//
// The model is the intersection of what those stores can do: named objects
// that are created once (exclusively), appended to while open, closed, and
// from then on only read, renamed or removed. Names are slash-separated
// relative paths; folders exist implicitly. A store's root is made
// explicitly (NewDirStore, hdfsbackend.Options.Create); OpenDirStore and
// hdfsbackend.Open refuse a missing one with ErrNoStore.
//
// Durability: Writer.Sync makes the bytes written so far, and the name,
// durable where the store can do that for an open object (local disk) and
// returns ErrSyncUnsupported where it cannot (HDFS). On stores with Sync,
// Close only completes the object (no fsync: sealing a segment must not cost
// a disk flush) and Persist makes a closed object durable later; on stores
// without Sync, Close is what makes an object durable. Callers wanting a
// durable object call Sync, then Close (see CloseDurably). Rename is atomic
// and durable on return.
//
// All implementations are safe for concurrent use by many goroutines; a single
// Writer or Reader is used by one goroutine at a time unless noted.
package objstore
