// Package lfs is the log-structured volume engine of hlfs.
//
// A volume is a superblock, a log of segment objects (package segment) and
// checkpoints, all in an objstore.Store. Writes become records appended to
// the log in memory and pushed to the store in the background; an in-memory
// B-tree (the block map) maps volume ranges to records. Flush makes every
// completed write durable (group commit: one Sync or Close covers every
// write before it). Open loads the newest valid checkpoint and replays the
// log after it; a torn record at the end of the log ends it, damage anywhere
// else is a *CorruptionError naming the object and offset.
//
// Use:
//
//	lfs.Create(st, "vm1", lfs.Config{Size: 10 << 30})
//	v, err := lfs.Open(st, "vm1", lfs.Options{})
//	v.WriteAt(p, off, false); v.Flush(); v.ReadAt(p, off)
//	v.Close()
//
// One process owns a volume at a time (an owner lock in the store); a
// Volume is safe for concurrent use by many goroutines. The on-disk format
// is specified in docs/format.md.
package lfs
