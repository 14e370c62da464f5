package lfs

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPlanPass checks the cleaner's choices rule by rule. Segments are 100
// bytes unless a case says otherwise; live bytes are per segment.
func TestPlanPass(t *testing.T) {
	seqs := func(n uint64) []uint64 {
		out := make([]uint64, n)
		for i := range out {
			out[i] = uint64(i + 1)
		}
		return out
	}
	sizes := func(n uint64) map[uint64]int64 {
		out := map[uint64]int64{}
		for i := uint64(1); i <= n; i++ {
			out[i] = 100
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		in      planInputs
		opts    GCOptions
		free    []uint64
		victims []uint64
		copy    int64
	}{{
		name: "no checkpoint: nothing",
		in:   planInputs{segments: seqs(3), limit: 0, live: map[uint64]int64{1: 0, 2: 10}, sizes: sizes(3)},
	}, {
		name: "limit 1: nothing before the first segment",
		in:   planInputs{segments: seqs(3), limit: 1, live: map[uint64]int64{1: 0}, sizes: sizes(3)},
	}, {
		name: "empty segments are freed, never copied",
		in:   planInputs{segments: seqs(4), limit: 4, live: map[uint64]int64{1: 0, 2: 50, 3: 0}, sizes: sizes(4)},
		free: []uint64{1, 3}, victims: []uint64{2}, copy: 50,
	}, {
		name:    "never at or after the oldest kept checkpoint",
		in:      planInputs{segments: seqs(6), limit: 3, live: map[uint64]int64{1: 10, 2: 10, 3: 0, 4: 10, 5: 0}, sizes: sizes(6)},
		victims: []uint64{1, 2}, copy: 20,
	}, {
		name:    "utilization cut-off: above MaxUtilization stays",
		in:      planInputs{segments: seqs(4), limit: 4, live: map[uint64]int64{1: 96, 2: 95, 3: 40}, sizes: sizes(4)},
		victims: []uint64{2, 3}, copy: 135,
	}, {
		name: "a lower MaxUtilization",
		in:   planInputs{segments: seqs(4), limit: 4, live: map[uint64]int64{1: 96, 2: 95, 3: 40}, sizes: sizes(4)},
		opts: GCOptions{MaxUtilization: 0.5}, victims: []uint64{3}, copy: 40,
	}, {
		name: "pinned, kept and pending segments are left alone, even empty",
		in: planInputs{segments: seqs(6), limit: 6, live: map[uint64]int64{1: 10, 2: 0, 3: 10, 4: 0, 5: 10}, sizes: sizes(6),
			pinned: map[uint64]bool{1: true, 2: true}, kept: map[uint64]bool{3: true}, pending: map[uint64]bool{4: true}},
		victims: []uint64{5}, copy: 10,
	}, {
		name: "cost-benefit order under MaxCopy",
		// Scores with limit 11: seq 1 u=.9 → .1·10/1.9 = .53; seq 5 u=.5 →
		// .5·6/1.5 = 2; seq 9 u=.1 → .9·2/1.1 = 1.64; seq 8 u=.3 → .7·3/1.3 = 1.62.
		in: planInputs{segments: seqs(10), limit: 11, live: map[uint64]int64{1: 90, 2: 100, 3: 100, 4: 100, 5: 50,
			6: 100, 7: 100, 8: 30, 9: 10, 10: 100}, sizes: sizes(10)},
		opts:    GCOptions{MaxCopy: 85},
		victims: []uint64{5, 9}, copy: 60, // 8 would pass 85
	}, {
		name:    "the best candidate is taken even when it alone exceeds MaxCopy",
		in:      planInputs{segments: seqs(3), limit: 3, live: map[uint64]int64{1: 80, 2: 90}, sizes: sizes(3)},
		opts:    GCOptions{MaxCopy: 10},
		victims: []uint64{1}, copy: 80,
	}, {
		name:    "victims come back in log order",
		in:      planInputs{segments: seqs(4), limit: 5, live: map[uint64]int64{1: 90, 2: 50, 3: 10, 4: 60}, sizes: sizes(4)},
		victims: []uint64{1, 2, 3, 4}, copy: 210,
	}, {
		name:    "a segment bigger than others has lower utilization",
		in:      planInputs{segments: seqs(3), limit: 3, live: map[uint64]int64{1: 96, 2: 96}, sizes: map[uint64]int64{1: 100, 2: 1000}},
		victims: []uint64{2}, copy: 96,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := planPass(tc.in, tc.opts)
			require.Equal(t, tc.free, p.free, "free")
			require.Equal(t, tc.victims, p.victims, "victims")
			require.Equal(t, tc.copy, p.copy, "copy")
		})
	}
}
