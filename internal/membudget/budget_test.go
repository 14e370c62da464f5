package membudget

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestLedgerFits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		log, req int64
		k        kind
		n        int64
		want     bool
	}{
		{"log fits", 50, 20, kindLog, 30, true},
		{"log over", 50, 20, kindLog, 31, false},
		{"oversized log alone", 0, 40, kindLog, 200, true},
		{"request fits", 10, 20, kindRequest, 30, true},
		{"request over its cap", 0, 30, kindRequest, 21, false},
		{"oversized request alone", 0, 0, kindRequest, 80, true},
		{"oversized request waits for log", 30, 0, kindRequest, 80, false},
		{"request over the limit", 60, 20, kindRequest, 21, false},
		{"request when no log is left", 0, 20, kindRequest, 30, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := ledger{limit: 100}
			l.held[kindLog], l.held[kindRequest] = tc.log, tc.req
			if got := l.fits(tc.k, tc.n); got != tc.want {
				t.Fatalf("fits(%d, %d) with log %d request %d = %v, want %v", tc.k, tc.n, tc.log, tc.req, got, tc.want)
			}
		})
	}
}

func TestShortfall(t *testing.T) {
	l := ledger{limit: 100}
	l.held[kindLog], l.held[kindRequest] = 70, 20
	if got := l.shortfall(kindLog, 30); got != 20 {
		t.Fatalf("log shortfall %d, want 20", got)
	}
	if got := l.shortfall(kindRequest, 10); got != 0 {
		t.Fatalf("request shortfall %d, want 0 (fits)", got)
	}
	if got := l.shortfall(kindRequest, 25); got != 15 {
		t.Fatalf("request shortfall %d, want 15", got)
	}
	if got := l.shortfall(kindRequest, 40); got != 0 {
		t.Fatalf("request shortfall %d beyond the request cap, want 0: reclaim cannot help", got)
	}
}

func TestChooseVictims(t *testing.T) {
	t0 := time.Unix(1000, 0)
	cands := []candidate{
		{10, t0.Add(3)}, {40, t0.Add(2)}, {0, t0}, {40, t0.Add(1)}, {25, t0},
	}
	for _, tc := range []struct {
		need int64
		want []int
	}{
		{0, nil},
		{1, []int{3}},        // largest, oldest of the two 40s
		{40, []int{3}},       // one is enough
		{41, []int{3, 1}},    // both 40s
		{81, []int{3, 1, 4}}, // then 25
		{1000, []int{3, 1, 4, 0}},
	} {
		got := chooseVictims(cands, tc.need)
		if len(got) != len(tc.want) {
			t.Fatalf("need %d: victims %v, want %v", tc.need, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("need %d: victims %v, want %v", tc.need, got, tc.want)
			}
		}
	}
}

func TestNilBudget(t *testing.T) {
	var b *Budget
	if err := b.Acquire(context.Background(), 1<<40); err != nil {
		t.Fatal(err)
	}
	b.Release(1 << 40)
	if b.Used() != 0 || b.Limit() != 0 {
		t.Fatal("nil budget reports memory")
	}
	b.Register(nil)()
	b.Close()
}

// fakeVolume holds log memory that Reclaim releases from another
// goroutine, like a volume's writer once the store has the segment.
type fakeVolume struct {
	b  *Budget
	mu struct {
		sync.Mutex
		active int64 // reclaimable
		since  time.Time
	}
	reclaims chan int64
}

func (f *fakeVolume) Reclaimable() (int64, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mu.active, f.mu.since
}

func (f *fakeVolume) Reclaim() {
	f.mu.Lock()
	n := f.mu.active
	f.mu.active = 0
	f.mu.Unlock()
	if n > 0 {
		f.reclaims <- n
	}
}

func (f *fakeVolume) write(n int64) error {
	if err := f.b.Acquire(context.Background(), n); err != nil {
		return err
	}
	f.mu.Lock()
	if f.mu.active == 0 {
		f.mu.since = time.Now()
	}
	f.mu.active += n
	f.mu.Unlock()
	return nil
}

// TestReclaimUnblocksWriters: many writers far past the limit all finish,
// the budget never holds more than its limit, and what is reclaimed is
// released by a separate "pusher", as lfs does.
func TestReclaimUnblocksWriters(t *testing.T) {
	const limit = 1 << 20
	b := New(limit)
	reclaims := make(chan int64, 1024)
	done := make(chan struct{})
	go func() { // the store: releases reclaimed segments
		for {
			select {
			case n := <-reclaims:
				b.Release(n)
			case <-done:
				return
			}
		}
	}()
	defer close(done)
	var wg sync.WaitGroup
	vols := make([]*fakeVolume, 20)
	for i := range vols {
		vols[i] = &fakeVolume{b: b, reclaims: reclaims}
		defer b.Register(vols[i])()
		wg.Add(1)
		go func(f *fakeVolume, seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 1))
			for range 200 {
				if err := f.write(int64(1 + r.IntN(64<<10))); err != nil {
					t.Error(err)
					return
				}
			}
		}(vols[i], uint64(i))
	}
	wg.Wait()
	if p := b.Peak(); p > limit {
		t.Fatalf("peak %d over the limit %d", p, limit)
	}
	if b.Peak() < limit/2 {
		t.Fatalf("peak %d: the test did not fill the budget", b.Peak())
	}
}

func TestAcquireContextAndClose(t *testing.T) {
	b := New(100)
	if err := b.Acquire(context.Background(), 80); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.Acquire(ctx, 30); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire past the limit: %v, want deadline exceeded", err)
	}
	if b.Used() != 80 {
		t.Fatalf("used %d after a cancelled acquire, want 80", b.Used())
	}
	errc := make(chan error)
	go func() { errc <- b.Acquire(context.Background(), 30) }()
	waitQueued(t, b, kindLog, 1)
	b.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("waiter after Close: %v, want ErrClosed", err)
	}
	if err := b.AcquireRequest(context.Background(), 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("acquire after Close: %v", err)
	}
	b.Release(80)
	if b.Used() != 0 {
		t.Fatalf("used %d", b.Used())
	}
}

// TestFirstComeFirstServed: a large waiter is not overtaken by small ones
// arriving after it.
func TestFirstComeFirstServed(t *testing.T) {
	b := New(100)
	ctx := context.Background()
	if err := b.Acquire(ctx, 90); err != nil {
		t.Fatal(err)
	}
	got := make(chan int64, 2)
	go func() { _ = b.Acquire(ctx, 50); got <- 50 }()
	waitQueued(t, b, kindLog, 1)
	go func() { _ = b.Acquire(ctx, 5); got <- 5 }()
	waitQueued(t, b, kindLog, 2)
	b.Release(40) // room for either, not both: the 50 came first
	if first := <-got; first != 50 {
		t.Fatalf("granted %d first, want the earlier 50", first)
	}
	waitQueued(t, b, kindLog, 1)
	b.Release(50)
	if second := <-got; second != 5 {
		t.Fatalf("then %d", second)
	}
}

// TestRequestsLeaveRoomForLog: requests may hold at most half the budget, so
// the appends they wait for always find room (the deadlock this prevents:
// payloads filling the budget while each waits to append its own bytes).
func TestRequestsLeaveRoomForLog(t *testing.T) {
	b := New(100)
	ctx := context.Background()
	for range 5 {
		if err := b.AcquireRequest(ctx, 10); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := b.AcquireRequest(short, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request past half the budget: %v", err)
	}
	if err := b.Acquire(ctx, 50); err != nil {
		t.Fatal(err)
	}
	if b.Used() != 100 {
		t.Fatalf("used %d", b.Used())
	}
}

func waitQueued(t *testing.T, b *Budget, k kind, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		q := len(b.mu.queue[k])
		b.mu.Unlock()
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters queued, want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestModel drives a budget with random acquisitions and releases of both
// kinds from one goroutine, mirroring it in a plain model: what is granted
// at once, what waits, and in which order waiters are granted.
func TestModel(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 7))
		const limit = 1000
		b := New(limit)
		type held struct {
			k kind
			n int64
		}
		var holding []held
		type pend struct {
			k    kind
			n    int64
			done chan error
		}
		var waiting [numKinds][]pend
		var model ledger
		model.limit = limit
		ctx := context.Background()
		for step := range 300 {
			if r.IntN(2) == 0 || len(holding) == 0 {
				k := kind(r.IntN(2))
				n := int64(1 + r.IntN(400))
				immediate := len(waiting[k]) == 0 && model.fits(k, n)
				done := make(chan error, 1)
				go func() {
					if k == kindLog {
						done <- b.Acquire(ctx, n)
					} else {
						done <- b.AcquireRequest(ctx, n)
					}
				}()
				if immediate {
					if err := <-done; err != nil {
						t.Fatal(err)
					}
					model.take(k, n)
					holding = append(holding, held{k, n})
				} else {
					waitQueued(t, b, k, len(waiting[k])+1)
					waiting[k] = append(waiting[k], pend{k, n, done})
				}
			} else {
				i := r.IntN(len(holding))
				h := holding[i]
				holding = append(holding[:i], holding[i+1:]...)
				if h.k == kindLog {
					b.Release(h.n)
				} else {
					b.ReleaseRequest(h.n)
				}
				model.give(h.k, h.n)
				for k := range waiting {
					for len(waiting[k]) > 0 && model.fits(kind(k), waiting[k][0].n) {
						p := waiting[k][0]
						waiting[k] = waiting[k][1:]
						if err := <-p.done; err != nil {
							t.Fatal(err)
						}
						model.take(p.k, p.n)
						holding = append(holding, held{p.k, p.n})
					}
				}
			}
			if got, want := b.Used(), model.used(); got != want {
				t.Fatalf("seed %d step %d: used %d, model %d", seed, step, got, want)
			}
			for k := range waiting {
				b.mu.Lock()
				q := len(b.mu.queue[k])
				b.mu.Unlock()
				if q != len(waiting[k]) {
					t.Fatalf("seed %d step %d: %d waiting of kind %d, model %d", seed, step, q, k, len(waiting[k]))
				}
			}
		}
		b.Close()
		for k := range waiting {
			for _, p := range waiting[k] {
				if err := <-p.done; !errors.Is(err, ErrClosed) {
					t.Fatalf("waiter after Close: %v", err)
				}
			}
		}
	}
}
