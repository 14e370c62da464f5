package hdfsbackend

import (
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/colinmarc/hdfs/v2"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		name              string
		first, max, limit time.Duration
		want              []time.Duration
	}{
		{"doubles to max then stops at limit", 10, 40, 100, []time.Duration{10, 20, 40, 30}},
		{"limit below first", 10, 40, 5, []time.Duration{5}},
		{"no budget", 10, 40, 0, nil},
		{"exact fit", 10, 10, 30, []time.Duration{10, 10, 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackoff(tc.first, tc.max, tc.limit)
			var got []time.Duration
			for {
				d, ok := b.pause()
				if !ok {
					break
				}
				got = append(got, d)
			}
			require.Equal(t, tc.want, got)
		})
	}
}

// fakeFile is a fileWriter whose Close answers from a script.
type fakeFile struct {
	closes  []error // answer of each Close call; the last one repeats
	calls   int
	written []byte
}

func (f *fakeFile) Write(p []byte) (int, error) {
	f.written = append(f.written, p...)
	return len(p), nil
}

func (f *fakeFile) Close() error {
	i := min(f.calls, len(f.closes)-1)
	f.calls++
	return f.closes[i]
}

var errReplicating = &os.PathError{Op: "create", Path: "/x", Err: hdfs.ErrReplicating}

// fakeWriter returns a writer over f in a Store whose sleep records pauses.
func fakeWriter(f *fakeFile, limit time.Duration) (*writer, *[]time.Duration) {
	var slept []time.Duration
	s := &Store{
		opts:  Options{CloseRetryTimeout: limit}.withDefaults(),
		log:   slog.New(slog.DiscardHandler),
		sleep: func(d time.Duration) { slept = append(slept, d) },
	}
	s.pool = newClientPool(hdfs.ClientOptions{}, 1, new(addrSet), s.log)
	s.mu.open = map[string]int{"obj": 1}
	return &writer{s: s, name: "obj", pc: &pooled{refs: 1}, f: f}, &slept
}

func TestCloseRetriesWhileReplicating(t *testing.T) {
	f := &fakeFile{closes: []error{errReplicating, errReplicating, errReplicating, nil}}
	w, slept := fakeWriter(f, 30*time.Second)
	_, err := w.Write([]byte("data"))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.Equal(t, 4, f.calls, "three ErrReplicating answers, then success")
	require.Equal(t, []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}, *slept)
	require.Equal(t, "data", string(f.written))
	require.False(t, w.s.writing("obj"), "a closed writer no longer counts as open")
	require.Zero(t, w.pc.refs, "Close releases the client")
}

func TestCloseRetryIsBounded(t *testing.T) {
	f := &fakeFile{closes: []error{errReplicating}}
	w, slept := fakeWriter(f, time.Second)
	err := w.Close()
	require.Error(t, err)
	require.True(t, errors.Is(err, hdfs.ErrReplicating), "the last answer is returned: %v", err)
	require.Contains(t, err.Error(), "hdfsbackend: close obj: ")
	var total time.Duration
	for _, d := range *slept {
		total += d
	}
	require.Equal(t, time.Second, total, "pauses add up to CloseRetryTimeout")
	require.Equal(t, len(*slept)+1, f.calls)
	// Sticky: later calls return the same error without touching the file.
	require.Equal(t, err, w.Close())
	_, werr := w.Write([]byte("x"))
	require.Equal(t, err, werr)
	require.Equal(t, err, w.Sync())
	require.Equal(t, len(*slept)+1, f.calls)
}

func TestCloseDoesNotRetryOtherErrors(t *testing.T) {
	boom := errors.New("datanode pipeline broke")
	f := &fakeFile{closes: []error{boom}}
	w, slept := fakeWriter(f, 30*time.Second)
	err := w.Close()
	require.ErrorIs(t, err, boom)
	require.ErrorIs(t, err, ErrPipeline, "not a NameNode answer: a DataNode failure")
	require.Equal(t, 1, f.calls)
	require.Empty(t, *slept)
}

func TestSyncUnsupported(t *testing.T) {
	w, _ := fakeWriter(&fakeFile{closes: []error{nil}}, time.Second)
	require.ErrorIs(t, w.Sync(), objstore.ErrSyncUnsupported)
	require.NoError(t, objstore.CloseDurably(w))
	_, err := w.Write([]byte("late"))
	require.ErrorIs(t, err, ErrClosed)
}
