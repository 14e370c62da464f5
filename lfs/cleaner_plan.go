package lfs

import (
	"cmp"
	"slices"

	"github.com/hlfs/hlfs/snapshot"
)

// planInputs is everything a cleaning pass decides from, gathered under the
// locks and from the store (Volume.gatherPlanInputs); planPass needs
// nothing else.
type planInputs struct {
	segments []uint64         // the own branch's segment objects, oldest first
	limit    uint64           // first segment never cleaned (the oldest kept checkpoint's); 0: no checkpoint
	live     map[uint64]int64 // live bytes per segment (exact books)
	sizes    map[uint64]int64 // object size of each segment below limit with live bytes
	kept     map[uint64]bool  // held by keep objects (a clone made during a copy may name them)
	pinned   map[uint64]bool  // named by a snapshot with clones
	pending  map[uint64]bool  // already waiting for deletion
	namedBy  map[uint64][]snapshot.ID
}

// passPlan is what one pass decided.
type passPlan struct {
	free    []uint64 // segments no map names: queue them for deletion
	victims []uint64 // segments to copy forward, oldest first
	copy    int64    // live bytes the victims hold
}

// planPass chooses a pass's work, with no I/O and no locks. The rules:
//
//   - nothing at or after limit, the oldest kept checkpoint's segment:
//     recovery replays from there (and with limit ≤ 1 nothing at all);
//   - nothing kept, pinned by a clone, or already pending deletion;
//   - a segment without live bytes is free: deleted once two checkpoints
//     name none of it, nothing to copy;
//   - a segment whose live share is above opts.MaxUtilization is left;
//   - the others are ranked by Rosenblum and Ousterhout's cost-benefit,
//     free space gained times its age per byte read and written,
//     (1-u)·age/(1+u) with age in segments before limit, best first, and
//     taken while their live bytes fit opts.MaxCopy (the first always).
func planPass(in planInputs, opts GCOptions) passPlan {
	var p passPlan
	if in.limit <= 1 {
		return p
	}
	maxU := opts.maxUtilization()
	type candidate struct {
		seq   uint64
		score float64
	}
	var cands []candidate
	for _, seq := range in.segments {
		if seq >= in.limit || in.kept[seq] || in.pinned[seq] || in.pending[seq] {
			continue
		}
		n := in.live[seq]
		if n == 0 {
			p.free = append(p.free, seq)
			continue
		}
		u := float64(n) / float64(max(in.sizes[seq], 1))
		if u > maxU {
			continue
		}
		age := float64(in.limit - seq)
		cands = append(cands, candidate{seq, (1 - u) * age / (1 + u)})
	}
	// Stable, so equal scores keep log order (the older first).
	slices.SortStableFunc(cands, func(a, b candidate) int { return cmp.Compare(b.score, a.score) })
	for _, c := range cands {
		if opts.MaxCopy > 0 && p.copy > 0 && p.copy+in.live[c.seq] > opts.MaxCopy {
			break
		}
		p.victims = append(p.victims, c.seq)
		p.copy += in.live[c.seq]
	}
	slices.Sort(p.victims)
	return p
}
