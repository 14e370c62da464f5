package hdfsbackend_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hlfs/hlfs/hdfsbackend"
	"github.com/hlfs/hlfs/hdfsbackend/hdfstest"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/internal/objstore/storetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) objstore.Store {
		return hdfstest.NewStore(t, hdfsbackend.Options{})
	})
}

// writeObject creates name with data and closes it durably.
func writeObject(t *testing.T, s objstore.Store, name string, data []byte) {
	t.Helper()
	w, err := s.Create(name)
	require.NoError(t, err)
	_, err = w.Write(data)
	require.NoError(t, err)
	require.NoError(t, objstore.CloseDurably(w))
}

// readObject returns the whole object.
func readObject(t *testing.T, s objstore.Store, name string) []byte {
	t.Helper()
	r, err := s.Open(name)
	require.NoError(t, err)
	defer r.Close()
	buf := make([]byte, r.Size())
	n, err := r.ReadAt(buf, 0)
	require.NoError(t, err)
	require.Equal(t, len(buf), n)
	return buf
}

func randomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// TestCreateExclusiveAcrossStores races two Stores, as two hosts would, for
// the same names: exactly one Create wins each name, whether the winner's
// file is still open or already closed.
func TestCreateExclusiveAcrossStores(t *testing.T) {
	uri := hdfstest.FolderURI(t)
	hosts := make([]*hdfsbackend.Store, 2)
	for i := range hosts {
		s, err := hdfsbackend.Open(uri, hdfsbackend.Options{Create: true})
		require.NoError(t, err)
		hosts[i] = s
	}
	t.Cleanup(func() {
		require.NoError(t, hdfstest.RemoveAll(hosts[0], ""))
		for _, s := range hosts {
			s.Close()
		}
	})

	const rounds = 20
	for round := range rounds {
		name := "vol/owner/held-" + string(rune('a'+round))
		var wg sync.WaitGroup
		writers := make([]objstore.Writer, 2)
		errs := make([]error, 2)
		for i, s := range hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				writers[i], errs[i] = s.Create(name)
			}()
		}
		wg.Wait()
		won := 0
		for i := range hosts {
			if errs[i] == nil {
				won++
				// Still open: the loser's second try fails too.
				_, err := hosts[1-i].Create(name)
				require.ErrorIs(t, err, objstore.ErrExist)
				_, err = writers[i].Write([]byte{byte(i)})
				require.NoError(t, err)
				require.NoError(t, writers[i].Close())
			} else {
				require.ErrorIs(t, errs[i], objstore.ErrExist, "round %d host %d", round, i)
			}
		}
		require.Equal(t, 1, won, "round %d: %v", round, errs)
		// Closed: neither host can create it again.
		for _, s := range hosts {
			_, err := s.Create(name)
			require.ErrorIs(t, err, objstore.ErrExist)
		}
	}
}

func TestReplicationOption(t *testing.T) {
	for _, tc := range []struct{ opt, want int }{{0, 3}, {1, 1}, {2, 2}} {
		s := hdfstest.NewStore(t, hdfsbackend.Options{Replication: tc.opt})
		writeObject(t, s, "seg", []byte("x"))
		got, err := hdfsbackend.ReplicationOf(s, "seg")
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "Replication: %d", tc.opt)
	}
}

// TestMultiBlockObject writes an object over several HDFS blocks (the
// mini-cluster's block size is 4 MiB) and reads it back with concurrent
// ReadAt calls that straddle block boundaries.
func TestMultiBlockObject(t *testing.T) {
	s := hdfstest.NewStore(t, hdfsbackend.Options{})
	data := randomBytes(1, 9<<20+123)
	w, err := s.Create("big")
	require.NoError(t, err)
	for off := 0; off < len(data); off += 100_000 {
		_, err := w.Write(data[off:min(off+100_000, len(data))])
		require.NoError(t, err)
	}
	require.NoError(t, objstore.CloseDurably(w))

	r, err := s.Open("big")
	require.NoError(t, err)
	defer r.Close()
	require.EqualValues(t, len(data), r.Size())
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(g)))
			for range 20 {
				off := rng.Int63n(int64(len(data)))
				if rng.Intn(3) == 0 { // straddle a block boundary
					off = int64(rng.Intn(2)+1)<<22 - int64(rng.Intn(5000))
				}
				buf := make([]byte, rng.Intn(300_000)+1)
				n, err := r.ReadAt(buf, off)
				end := min(off+int64(len(buf)), int64(len(data)))
				if end-off < int64(len(buf)) {
					if !errors.Is(err, io.EOF) {
						t.Errorf("short read at %d: %v", off, err)
					}
				} else if err != nil {
					t.Errorf("read at %d: %v", off, err)
				}
				if !bytes.Equal(buf[:n], data[off:end]) {
					t.Errorf("read at %d+%d: wrong bytes", off, len(buf))
				}
			}
		}()
	}
	wg.Wait()
	n, err := r.ReadAt(make([]byte, 10), int64(len(data)))
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF)
}

// TestConcurrentUse writes and reads many objects from many goroutines
// through one Store with fewer connections than goroutines.
func TestConcurrentUse(t *testing.T) {
	s := hdfstest.NewStore(t, hdfsbackend.Options{Clients: 2})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 4 {
				name := fmt.Sprintf("v%d/seg/%d", g, i)
				data := randomBytes(int64(100*g+i), 300_000+i)
				w, err := s.Create(name)
				if !assert.NoError(t, err) {
					return
				}
				_, err = w.Write(data)
				assert.NoError(t, err)
				assert.NoError(t, w.Close())
				r, err := s.Open(name)
				if !assert.NoError(t, err) {
					return
				}
				buf := make([]byte, len(data))
				_, err = r.ReadAt(buf, 0)
				assert.NoError(t, err)
				assert.True(t, bytes.Equal(data, buf), name)
				assert.NoError(t, r.Close())
			}
			names, err := s.List(fmt.Sprintf("v%d/seg", g))
			assert.NoError(t, err)
			assert.Equal(t, []string{"0", "1", "2", "3"}, names)
		}()
	}
	wg.Wait()
}

// TestPersistCrashedWriter leaves an object open as a crashed writer does
// and checks that Persist closes it through lease recovery (the
// mini-cluster's lease soft limit is 5 s), keeping the bytes that reached
// the DataNodes.
func TestPersistCrashedWriter(t *testing.T) {
	s := hdfstest.NewStore(t, hdfsbackend.Options{})
	other, err := hdfsbackend.Open(s.URI(), hdfsbackend.Options{})
	require.NoError(t, err)
	defer other.Close()

	data := randomBytes(2, 5<<20)
	w, err := other.Create("seg/0007")
	require.NoError(t, err)
	_, err = w.Write(data)
	require.NoError(t, err)

	// Alive: the writer renews its lease, so Persist from another store
	// gives up with ErrLeaseHeld; its own store answers at once.
	impatient, err := hdfsbackend.Open(s.URI(), hdfsbackend.Options{LeaseRecoveryTimeout: 2 * time.Second})
	require.NoError(t, err)
	defer impatient.Close()
	err = impatient.Persist("seg/0007")
	require.ErrorIs(t, err, hdfsbackend.ErrLeaseHeld)
	t.Logf("persist while the writer lives: %v", err)
	require.NoError(t, other.Persist("seg/0007"))

	// Before recovery only the completed 4 MiB block is visible.
	r, err := s.Open("seg/0007")
	require.NoError(t, err)
	require.EqualValues(t, 4<<20, r.Size())
	require.NoError(t, r.Close())

	hdfsbackend.CrashWriter(w)
	start := time.Now()
	require.NoError(t, s.Persist("seg/0007"))
	t.Logf("persist of the crashed writer's object took %v", time.Since(start))
	got := readObject(t, s, "seg/0007")
	require.GreaterOrEqual(t, len(got), 4<<20)
	require.Equal(t, data[:len(got)], got, "recovered object is a prefix of what was written")
	t.Logf("recovered %d of %d bytes", len(got), len(data))

	// Closed now: Persist returns at once, and the length stays.
	start = time.Now()
	require.NoError(t, s.Persist("seg/0007"))
	require.Less(t, time.Since(start), time.Second)
	require.Equal(t, len(got), len(readObject(t, s, "seg/0007")))
	require.ErrorIs(t, s.Persist("seg/none"), objstore.ErrNotExist)
}

func TestOpenFolderIsNotExist(t *testing.T) {
	s := hdfstest.NewStore(t, hdfsbackend.Options{})
	writeObject(t, s, "v/seg/1", []byte("a"))
	_, err := s.Open("v/seg")
	require.ErrorIs(t, err, objstore.ErrNotExist)
	_, err = s.Create("v/seg")
	require.ErrorIs(t, err, objstore.ErrExist)
	require.ErrorIs(t, s.Persist("v"), objstore.ErrNotExist)
	err = s.Remove("v/seg")
	require.Error(t, err, "a folder that is not empty stays")
	require.NoError(t, s.Remove("v/seg/1"))
	require.NoError(t, s.Remove("v/seg"))
}

func TestRenameMakesFolders(t *testing.T) {
	s := hdfstest.NewStore(t, hdfsbackend.Options{})
	writeObject(t, s, "a/tmp", []byte("payload"))
	require.NoError(t, s.Rename("a/tmp", "b/c/final"))
	require.Equal(t, "payload", string(readObject(t, s, "b/c/final")))
	_, err := s.Open("a/tmp")
	require.ErrorIs(t, err, objstore.ErrNotExist)
}

// TestEnvironment opens a store by a URI without NameNode, found through
// HADOOP_CONF_DIR (fs.defaultFS), as HADOOP_USER_NAME.
func TestEnvironment(t *testing.T) {
	uri := hdfstest.FolderURI(t)
	confDir := os.Getenv("HADOOP_CONF_DIR")
	if confDir == "" {
		t.Fatal("HADOOP_CONF_DIR is not set: start the mini-cluster with `eval \"$(scripts/hdfs-up.sh)\"`")
	}
	t.Setenv("HADOOP_USER_NAME", "hlfs-test-user")
	u, err := url.Parse(uri)
	require.NoError(t, err)
	s, err := hdfsbackend.Open("hdfs://"+u.Path, hdfsbackend.Options{Create: true})
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, hdfstest.RemoveAll(s, ""))
		s.Close()
	})
	writeObject(t, s, "o", []byte("x"))
	fi, err := hdfsbackend.FileInfoOf(s, "o")
	require.NoError(t, err)
	require.Equal(t, "hlfs-test-user", fi.Owner())

	// The same folder through the full URI sees the object.
	s2, err := hdfsbackend.Open(uri, hdfsbackend.Options{})
	require.NoError(t, err)
	defer s2.Close()
	require.Equal(t, "x", string(readObject(t, s2, "o")))
}

// TestOpenMissingRoot: Open never creates the store's folder unless asked
// (a mistyped --store is an error naming it, not a new store), and a stray
// file in the root lists as objstore.ErrNotFolder.
func TestOpenMissingRoot(t *testing.T) {
	uri := hdfstest.FolderURI(t)
	_, err := hdfsbackend.Open(uri, hdfsbackend.Options{})
	require.ErrorIs(t, err, objstore.ErrNoStore)
	require.ErrorContains(t, err, "does not exist")
	_, err = hdfsbackend.Open(uri, hdfsbackend.Options{})
	require.ErrorIs(t, err, objstore.ErrNoStore, "the failed Open created the folder")

	s, err := hdfsbackend.Open(uri, hdfsbackend.Options{Create: true})
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, hdfstest.RemoveAll(s, ""))
		s.Close()
	})
	writeObject(t, s, "README", []byte("not a volume"))
	_, err = s.List("README")
	require.ErrorIs(t, err, objstore.ErrNotFolder)
	s2, err := hdfsbackend.Open(uri, hdfsbackend.Options{})
	require.NoError(t, err)
	s2.Close()
}

func TestOpenBadURI(t *testing.T) {
	for _, uri := range []string{"file:///tmp/x", "hdfs://%zz", "hdfs:///no-host-and-no-conf"} {
		t.Setenv("HADOOP_CONF_DIR", t.TempDir())
		t.Setenv("HADOOP_HOME", "")
		_, err := hdfsbackend.Open(uri, hdfsbackend.Options{})
		require.Error(t, err, uri)
		t.Logf("%s: %v", uri, err)
	}
}
