// Package membudget bounds the memory one process spends on data in
// flight: the log bytes every open volume holds in memory until the store
// has them, and the request payloads the NBD server holds while it serves
// them. One Budget is shared by all of them.
//
// There are two kinds of holders, told apart by the methods they call:
//
//   - Log memory (Acquire, Release) can be given back early: a volume
//     registers a Reclaimer, and when a holder of either kind waits, the
//     budget asks the reclaimers holding the most (the largest, then the
//     oldest) to seal their in-memory segment and write it out, which
//     releases its bytes once the store has them.
//   - Request memory (AcquireRequest, ReleaseRequest) cannot be reclaimed;
//     it goes back when the request is answered. It may hold at most half
//     the limit, so log memory always has room to make progress.
//
// Waiting: Acquire and AcquireRequest block, first come first served
// within each kind, until the bytes fit under the limit, the context ends,
// or Close is called (ErrClosed). A single acquisition larger than what can
// ever fit is granted once nothing else of its kind is held, so it cannot
// wait forever: Used may then exceed Limit by that one acquisition.
//
// Deadlock freedom rests on one rule for callers: never wait for the
// budget while holding a lock that Reclaimer.Reclaim, Reclaimable, or the
// code that writes reclaimed memory out and releases it, takes. The budget
// itself calls reclaimers without holding its own lock.
//
// The accounting and the choice of victims are plain single-threaded code
// (ledger, chooseVictims); the Budget wraps them with a mutex, wait
// queues and the reclaimer registry. All Budget methods are safe for
// concurrent use; a nil *Budget means no budget: Acquire always succeeds
// at once and the accessors return 0.
package membudget
