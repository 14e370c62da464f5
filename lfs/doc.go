// Package lfs is the log-structured volume engine of hlfs: thin volumes with
// snapshots, clones and a cleaner, kept in an objstore.Store.
//
// A volume is a superblock, a log of segment objects (package segment),
// checkpoints and snapshot map objects. Writes become records appended to
// the log in memory and pushed to the store in the background; the block map
// (package internal/blockmap) maps volume ranges to records. Flush makes
// every completed write durable (group commit: one Sync, or one Close on
// stores without Sync, covers every write before it). Open loads the newest
// valid checkpoint and replays the log after it; a torn record at the end of
// the log ends it, damage anywhere else is a *CorruptionError naming the
// object and offset, and data of a newer format is refused (ErrNewerFormat).
//
// Snapshots: CreateSnapshot costs one log record and a flush, whatever the
// volume's size: the snapshot's map is a copy-on-write clone of the live
// map, written to its own object in the background. DeleteSnapshot,
// Rollback, SnapshotView and ListSnapshots complete the set. The snapshot
// tree itself (ids, parents, the one rule for create, delete and rollback
// that replay and the live path share) is package snapshot.
//
// Clones: Clone makes a writable volume from VOLUME@SNAPSHOT without copying
// data; its map points into its ancestors' segments (a family of volumes
// with branch ids, lineage.go). Flatten copies what a clone still reads from
// its source, so the source snapshot can go.
//
// Cleaner: StartCleaner cleans a served volume in the background; GC cleans
// now. The cleaner copies the live bytes of old segments into copy records
// at the log's end, points the live map and every snapshot's map at them,
// and deletes a segment only after two checkpoints name the copies. It never
// moves data that a snapshot with clones names. Usage and DiskUsage report
// where space goes; Fsck checks everything.
//
// Use:
//
//	err := lfs.Create(st, "vm1", lfs.Config{Size: 10 << 30})
//	v, err := lfs.Open(st, "vm1", lfs.Options{})
//	v.StartCleaner(lfs.CleanerOptions{})
//	err = v.WriteAt(p, off, false); err = v.Flush(); err = v.ReadAt(p, off)
//	err = v.CreateSnapshot("s1")
//	err = v.Close()
//	err = lfs.Clone(st, "vm1", "s1", "vm2")
//
// Concurrency: one process owns a volume at a time (an owner lock in the
// store; a zombie owner is fenced by epoch); others may open it with
// Options.ReadOnly, holding a read lease that keeps the owner's cleaner from
// deleting segments under them. A Volume and a SnapshotView are safe for
// concurrent use by many goroutines. A volume opened for writing runs a log
// pusher, a checkpointer, the owner lock's renewal and, once started, the
// cleaner, each in its own goroutine until Close. The locks and their order
// are in docs/design.md (Concurrency); the on-disk format is specified in
// docs/format.md.
//
// Roaming (roam.go): a Roaming serves a volume as its owner or, while
// another process owns it, as a standby whose reads see the owner's durable
// state; its first write asks the owner to hand over (HandOff: everything
// durable, a checkpoint, the lock released) and takes the lock with the
// next epoch (TakeOver), so a VM's disk can follow it between hosts.
// Hand-off requests carry a MAC keyed with the owner lock's token
// (HandOffRequest). docs/design.md, "Roaming", has the protocol.
package lfs
