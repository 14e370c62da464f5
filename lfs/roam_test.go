package lfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/segment"
	"github.com/stretchr/testify/require"
)

// roamOpts are the volume options of the roaming tests: every Volume a
// Roaming opens for writing runs Check when it closes (at every hand-off).
func roamOpts(t *testing.T) Options {
	return Options{Logger: testLogger(t), StoreRetry: -1,
		beforeClose: func(v *Volume) { requireCheck(t, v, "at a hand-off") }}
}

func requireReads(t *testing.T, r *Roaming, want []byte, what string) {
	t.Helper()
	got := make([]byte, len(want))
	require.NoError(t, r.ReadAt(got, 0), what)
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("%s: byte %d reads %#x, want %#x", what, i, got[i], want[i])
	}
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// TestRoamingAlternatesOwnership moves a volume back and forth between two
// Roamings on one store, as two hosts would: each round the standby side
// writes (which asks the owner to hand over and takes the lock), writes
// more and flushes; after every hand-off both sides read every flushed
// write, the old owner through its standby view.
func TestRoamingAlternatesOwnership(t *testing.T) {
	st := objstore.NewMemStore(false, 1)
	const size = 512 << 10
	require.NoError(t, Create(st, "r", Config{Size: size, BlockSize: 4096, SegmentSize: 1 << 20}))
	var sides [2]*Roaming
	ask := func(to int) func(context.Context, OwnerRecord) error {
		return func(_ context.Context, owner OwnerRecord) error {
			require.Equal(t, hostname(), owner.Host)
			// As serve's channel carries it: bytes, checked by the owner.
			return sides[to].ServeHandOff(NewHandOffRequest("r", owner).Encode())
		}
	}
	roles := [2][]bool{}
	for i := range sides {
		var err error
		sides[i], err = OpenRoaming(st, "r", roamOpts(t), RoamOptions{Ask: ask(1 - i),
			OnRole: func(v *Volume, owner bool) { roles[i] = append(roles[i], owner) }})
		require.NoError(t, err)
	}
	require.True(t, sides[0].Owner())
	require.False(t, sides[1].Owner(), "the second open is a standby")

	rng := rand.New(rand.NewSource(1))
	model := make([]byte, size)
	writeSome := func(r *Roaming, n int) {
		for k := 0; k < n; k++ {
			op := randomOp(rng, size)
			require.NoError(t, op.applyVolume(r))
			op.applyModel(model)
		}
		require.NoError(t, r.Flush())
	}
	writeSome(sides[0], 8)
	var latencies []time.Duration
	const rounds = 16
	for round := 1; round <= rounds; round++ {
		to, from := sides[round%2], sides[1-round%2]
		require.True(t, from.Owner())
		// The first write on the standby takes ownership.
		op := randomOp(rng, size)
		start := time.Now()
		require.NoError(t, op.applyVolume(to))
		latencies = append(latencies, time.Since(start))
		op.applyModel(model)
		require.True(t, to.Owner(), "round %d", round)
		require.False(t, from.Owner(), "round %d", round)
		require.NoError(t, to.Flush())
		what := fmt.Sprintf("round %d", round)
		requireReads(t, from, model, what+": the old owner, now a standby")
		writeSome(to, 1+rng.Intn(6))
		requireReads(t, to, model, what+": the new owner")
		requireReads(t, from, model, what+": the standby after more flushed writes")
	}
	slices.Sort(latencies)
	t.Logf("hand-off + first write on MemStore: median %v, max %v over %d hand-offs",
		latencies[len(latencies)/2], latencies[len(latencies)-1], len(latencies))
	// Every role change was reported: side 0 starts owner, side 1 standby.
	require.Equal(t, true, roles[0][0])
	require.Equal(t, false, roles[1][0])
	require.GreaterOrEqual(t, len(roles[1]), rounds/2, "side 1 took over every other round")
	for _, r := range sides {
		require.NoError(t, r.Close())
	}
	requireFsckAfterCrash(t, st, "r", "after the rounds")
	v := openChecked(t, st, "r", Options{})
	got := make([]byte, size)
	require.NoError(t, v.ReadAt(got, 0))
	require.Equal(t, -1, firstDiff(got, model))
	require.NoError(t, v.Close())
}

// TestRoamingStaleWriteFails: after a hand-off the old owner writes nothing:
// neither through its Roaming (a standby without a channel) nor through
// the Volume it served before; the new owner sees none of it.
func TestRoamingStaleWriteFails(t *testing.T) {
	st := objstore.NewMemStore(false, 2)
	const size = 256 << 10
	require.NoError(t, Create(st, "s", Config{Size: size, SegmentSize: 1 << 20}))
	a, err := OpenRoaming(st, "s", roamOpts(t), RoamOptions{})
	require.NoError(t, err)
	b, err := OpenRoaming(st, "s", roamOpts(t), RoamOptions{})
	require.NoError(t, err)
	require.False(t, b.Owner())
	require.ErrorIs(t, b.WriteAt(make([]byte, 4096), 0, false), ErrStandby, "no channel: a standby does not write")
	rec := a.Current().owner.rec
	require.ErrorIs(t, b.ServeHandOff(NewHandOffRequest("s", rec).Encode()), ErrHandOffRefused, "a standby hands nothing off")
	forged := rec
	forged.Token = "guessed"
	require.ErrorIs(t, a.ServeHandOff(NewHandOffRequest("s", forged).Encode()), ErrHandOffRefused)
	require.True(t, a.Owner(), "a refused request changes nothing")

	x, y0 := bytes.Repeat([]byte{0x11}, 8192), bytes.Repeat([]byte{0x33}, keepMin)
	require.NoError(t, a.WriteAt(x, 0, false))
	// Kept by reference (WriteAtKeep) and made durable by the hand-off;
	// released at most once (a segment in memory when its Volume closes
	// leaves its payloads to the garbage collector): a release scribbles
	// over it, and the new owner reads it all the same.
	unflushed := bytes.Repeat([]byte{0x22}, keepMin)
	kept, released := bytes.Clone(unflushed), 0
	require.NoError(t, a.WriteAtKeep(kept, 16384, false, func() { released++; clear(kept) }))
	stale := a.Current()
	require.NoError(t, a.HandOff())
	require.False(t, a.Owner())
	require.LessOrEqual(t, released, 1)
	before := released
	require.ErrorIs(t, a.WriteAtKeep(bytes.Clone(y0), 0, false, func() { released++ }), ErrStandby)
	require.Equal(t, before+1, released, "a refused payload is released at once")

	y := bytes.Repeat([]byte{0x99}, 4096)
	require.ErrorIs(t, a.WriteAt(y, 0, true), ErrStandby)
	require.ErrorIs(t, a.Zero(0, 4096, true, false), ErrStandby)
	require.NoError(t, a.Flush(), "a standby has nothing to flush: the hand-off made its writes durable")
	require.False(t, a.Owner(), "a flush does not pull ownership back")
	require.ErrorIs(t, stale.WriteAt(y, 0, true), ErrClosed, "the handed-off Volume is closed")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, b.TakeOver(ctx), "the released lock is taken at once")
	// A request for the ownership that ended is refused by the new owner.
	require.ErrorIs(t, b.ServeHandOff(NewHandOffRequest("s", rec).Encode()), ErrHandOffRefused)
	require.True(t, b.Owner())
	want := make([]byte, size)
	copy(want, x)
	copy(want[16384:], unflushed)
	requireReads(t, b, want, "the new owner")
	requireReads(t, a, want, "the old owner's standby view")
	// The new owner's epoch is higher: the old one's lock is history.
	epoch, held, err := ownerState(st, "s")
	require.NoError(t, err)
	require.True(t, held)
	require.Equal(t, b.Current().owner.epoch, epoch)
	require.Greater(t, epoch, stale.owner.epoch)
	require.NoError(t, a.Close())
	require.NoError(t, b.Close())
}

// crashOwner stops v as a killed process stops: no more store I/O, no
// renewal, and the owner lock stays as it was.
func crashOwner(v *Volume) {
	v.mu.Lock()
	v.mu.closed = true
	v.mu.Unlock()
	close(v.stopBackground)
	v.backgroundWG.Wait()
	v.lw.fence(ErrClosed)
	close(v.lw.done)
	v.lw.wg.Wait()
	v.readers.close()
}

// TestStandbyReadsFollowTheOwner: a standby's reads see what the owner
// flushed after the standby opened (the view is renewed when the log grew),
// unless StaleReads; a standby's flush takes nothing over.
func TestStandbyReadsFollowTheOwner(t *testing.T) {
	st := objstore.NewMemStore(false, 4)
	const size = 256 << 10
	require.NoError(t, Create(st, "f", Config{Size: size, SegmentSize: 1 << 20}))
	owner, err := Open(st, "f", Options{})
	require.NoError(t, err)
	fresh, err := OpenStandby(st, "f", Options{}, RoamOptions{})
	require.NoError(t, err)
	stale, err := OpenStandby(st, "f", Options{}, RoamOptions{StaleReads: true})
	require.NoError(t, err)
	want := make([]byte, size)
	requireReads(t, fresh, want, "empty")
	views := 0
	for i := 0; i < 5; i++ {
		p := bytes.Repeat([]byte{byte(i + 1)}, 4096)
		require.NoError(t, owner.WriteAt(p, int64(i)*8192, false))
		require.NoError(t, owner.Flush())
		copy(want[i*8192:], p)
		before := fresh.Current()
		requireReads(t, fresh, want, fmt.Sprintf("write %d", i))
		if fresh.Current() != before {
			views++
		}
		cur := fresh.Current()
		requireReads(t, fresh, want, "again")
		require.Same(t, cur, fresh.Current(), "no new view while the log did not grow")
	}
	require.Equal(t, 5, views, "one new view per flush")
	requireReads(t, stale, make([]byte, size), "StaleReads: the view as opened")
	require.NoError(t, stale.Flush())
	require.False(t, stale.Owner())
	require.NoError(t, stale.Refresh())
	requireReads(t, stale, want, "StaleReads after Refresh")
	require.NoError(t, owner.Close())
	require.NoError(t, fresh.Close())
	require.NoError(t, stale.Close())
}

// TestTakeOverWithoutTheOwner: an owner on another host that cannot be
// asked (the channel fails) keeps the volume while its lease is renewed;
// once it is killed, the standby takes over when the lease has run out,
// and every write the owner acknowledged is there.
func TestTakeOverWithoutTheOwner(t *testing.T) {
	st := objstore.NewMemStore(false, 3)
	const size = 128 << 10
	require.NoError(t, Create(st, "u", Config{Size: size, SegmentSize: 1 << 20}))
	t.Setenv("HLFS_HOSTNAME", "host-a")
	const lease = 400 * time.Millisecond
	owner, err := Open(st, "u", Options{Lease: lease})
	require.NoError(t, err)
	data := bytes.Repeat([]byte{7}, 4096)
	require.NoError(t, owner.WriteAt(data, 0, true))

	t.Setenv("HLFS_HOSTNAME", "host-b")
	asks := 0
	refused := errors.New("connection refused")
	sb, err := OpenStandby(st, "u", Options{Lease: lease}, RoamOptions{TakeOverTimeout: 2 * lease,
		Ask: func(context.Context, OwnerRecord) error { asks++; return refused }})
	require.NoError(t, err)
	err = sb.WriteAt(data, 8192, false)
	require.ErrorIs(t, err, context.DeadlineExceeded, "a live owner that cannot be asked keeps the volume")
	require.GreaterOrEqual(t, asks, 1)
	require.False(t, sb.Owner())

	crashOwner(owner) // kill -9: the lock stays, unrenewed
	start := time.Now()
	require.NoError(t, sb.WriteAt(data, 8192, true))
	t.Logf("took over %v after the owner died (lease %v)", time.Since(start), lease)
	require.True(t, sb.Owner())
	want := make([]byte, size)
	copy(want, data)
	copy(want[8192:], data)
	requireReads(t, sb, want, "after the takeover")
	require.NoError(t, sb.Close())
}

// TestHandOffCrashAtEveryStoreOperation stops the store at each store
// operation of a hand-off in turn and crashes (unsynced bytes dropped);
// the next owner then reads every acknowledged write, and everything the
// old owner wrote when the hand-off completed; fsck is clean.
func TestHandOffCrashAtEveryStoreOperation(t *testing.T) {
	simulateOwnDeath(t)
	const size = 256 << 10
	for _, noSync := range []bool{false, true} {
		for k := 1; ; k++ {
			what := fmt.Sprintf("noSync=%v k=%d", noSync, k)
			st := objstore.NewMemStore(noSync, int64(k))
			require.NoError(t, Create(st, "h", Config{Size: size, SegmentSize: 1 << 20}))
			a, err := OpenRoaming(st, "h", Options{StoreRetry: -1, CheckpointInterval: -1}, RoamOptions{})
			require.NoError(t, err, what)
			acked := make([]byte, size)
			for i := 0; i < 12; i++ { // acknowledged by the flush below
				p := bytes.Repeat([]byte{byte(i + 1)}, 16<<10)
				require.NoError(t, a.WriteAt(p, int64(i)*20<<10, false), what)
				copy(acked[i*20<<10:], p)
			}
			require.NoError(t, a.Flush(), what)
			pending := bytes.Repeat([]byte{0xee}, 8192)
			require.NoError(t, a.WriteAt(pending, 0, false), what) // not yet acknowledged as durable
			dead := dieFrom(st, k)
			handErr := a.HandOff()
			if handErr == nil {
				copy(acked, pending) // the hand-off made it durable
			}
			if cur := a.Current(); cur.lw != nil {
				cur.Abandon() // the process dies
			}
			st.SetInjector(nil)
			st.Crash()
			b, err := OpenRoaming(st, "h", Options{}, RoamOptions{})
			require.NoError(t, err, what)
			require.True(t, b.Owner(), what)
			got := make([]byte, size)
			require.NoError(t, b.ReadAt(got, 0), what)
			if handErr != nil && bytes.Equal(got[:8192], pending) {
				copy(acked, pending) // it may have become durable before the failure
			}
			if i := firstDiff(got, acked); i >= 0 {
				t.Fatalf("%s (hand-off: %v): byte %d reads %#x, want %#x", what, handErr, i, got[i], acked[i])
			}
			requireCheck(t, b.Current(), what)
			require.NoError(t, b.Close(), what)
			requireFsckAfterCrash(t, st, "h", what)
			if !dead.Load() {
				require.NoError(t, handErr)
				require.Greater(t, k, 10, "a hand-off takes several store operations")
				t.Logf("noSync=%v: crashed at each of %d store operations of a hand-off", noSync, k-1)
				break
			}
		}
	}
}

// TestHandOffCheckpointsWhenItPays: a hand-off writes a checkpoint when the
// log since the last one is larger than the checkpoint would be, and
// leaves the short tail to the next owner's replay otherwise; either way
// the next owner reads everything.
func TestHandOffCheckpointsWhenItPays(t *testing.T) {
	st := objstore.NewMemStore(false, 5)
	const size = 4 << 20
	require.NoError(t, Create(st, "c", Config{Size: size, SegmentSize: 1 << 20}))
	a, err := OpenRoaming(st, "c", roamOpts(t), RoamOptions{})
	require.NoError(t, err)
	b, err := OpenRoaming(st, "c", roamOpts(t), RoamOptions{})
	require.NoError(t, err)
	want := make([]byte, size)
	block := func(i int) []byte { return bytes.Repeat([]byte{byte(i%250 + 1)}, 4096) }
	for i := 0; i < 300; i++ { // 300 separate extents: a 9600-byte map
		require.NoError(t, a.WriteAt(block(i), int64(i)*8192, false))
		copy(want[i*8192:], block(i))
	}
	require.NoError(t, a.Current().checkpoint())
	checkpoints := func() []segment.Pos {
		ps, err := listCheckpoints(st, "c")
		require.NoError(t, err)
		return ps
	}
	before := checkpoints()
	require.NoError(t, a.WriteAt(block(7), 4096, false)) // a short tail
	copy(want[4096:], block(7))
	require.NoError(t, a.HandOff())
	require.Equal(t, before, checkpoints(), "a short tail is left to replay")
	ctx := context.Background()
	require.NoError(t, b.TakeOver(ctx))
	requireReads(t, b, want, "after a hand-off without a checkpoint")

	for i := 0; i < 50; i++ { // 200 KiB of log: more than the map
		require.NoError(t, b.WriteAt(block(i+3), int64(i)*8192+4096, false))
		copy(want[i*8192+4096:], block(i+3))
	}
	require.NoError(t, b.HandOff())
	require.NotEqual(t, before, checkpoints(), "a long tail gets a checkpoint")
	require.NoError(t, a.TakeOver(ctx))
	requireReads(t, a, want, "after a hand-off with a checkpoint")
	require.NoError(t, a.Close())
	require.NoError(t, b.Close())
}
