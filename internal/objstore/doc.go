// Package objstore is the seam between hlfs and the place its objects live: a
// local directory (DirStore), memory (MemStore, with error injection and crash
// simulation for tests) and, in package hdfsbackend, HDFS.
//
// The model is the intersection of what those stores can do: named objects
// that are created once (exclusively), appended to while open, closed, and
// from then on only read, renamed or removed. Names are slash-separated
// relative paths; folders exist implicitly.
//
// Durability: Close makes an object and its name durable on every store.
// Writer.Sync makes the bytes written so far durable where the store can do
// that for an open object and returns ErrSyncUnsupported where it cannot
// (HDFS); callers then Close instead. Rename is atomic and durable on return.
//
// All implementations are safe for concurrent use by many goroutines; a single
// Writer or Reader is used by one goroutine at a time unless noted.
package objstore
