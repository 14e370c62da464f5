package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hlfs/hlfs/hdfsbackend"
	"github.com/hlfs/hlfs/hdfsbackend/hdfstest"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/lfs"
	"github.com/hlfs/hlfs/nbdserver"
)

// roamCatalog serves one lfs.Roaming as the export of its name.
type roamCatalog struct{ r *lfs.Roaming }

func (c roamCatalog) Names() []string { return []string{c.r.Name()} }

func (c roamCatalog) Lookup(name string) (nbdserver.Export, nbdserver.ExportInfo, error) {
	if name != c.r.Name() {
		return nil, nbdserver.ExportInfo{}, fmt.Errorf("%w: %s", nbdserver.ErrUnknownExport, name)
	}
	return c.r, nbdserver.ExportInfo{PreferredBlockSize: uint32(c.r.BlockSize())}, nil
}

// roamPair serves one volume from two "hosts" in this process, each an
// nbdserver on loopback TCP over its own lfs.Roaming, wired as serve will
// wire them: a standby's Ask sends lfs.NewHandOffRequest through
// nbdserver.RequestHandOff to the other server, whose Options.HandOff
// passes it to its Roaming's ServeHandOff. It returns the NBD URIs.
func roamPair(t *testing.T, st objstore.Store, vol string) [2]string {
	t.Helper()
	var addrs, uris [2]string
	var ls [2]net.Listener
	for i := range ls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls[i], addrs[i] = l, l.Addr().String()
		uris[i] = "nbd://" + addrs[i] + "/" + vol
	}
	for i := range ls {
		other := addrs[1-i]
		r, err := lfs.OpenRoaming(st, vol, lfs.Options{}, lfs.RoamOptions{
			Ask: func(ctx context.Context, owner lfs.OwnerRecord) error {
				req := lfs.NewHandOffRequest(vol, owner).Encode()
				return nbdserver.RequestHandOff(ctx, "tcp", other, req, nil)
			}})
		if err != nil {
			t.Fatal(err)
		}
		srv := nbdserver.New(roamCatalog{r}, nbdserver.Options{HandOff: r.ServeHandOff})
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ls[i]) }()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			if err := <-served; !errors.Is(err, nbdserver.ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
			if err := r.Close(); err != nil {
				t.Errorf("close %s: %v", uris[i], err)
			}
		})
	}
	return uris
}

// roamWriterScript is a python-libnbd client connected to both servers at
// once. It writes (and now and then trims or zeroes) on one, flushes, then
// switches to the other, many times: each first write on a standby moves
// the volume. After every flush both servers must read the whole volume as
// the model says: the owner, and the standby through its view.
const roamWriterScript = `
import nbd, random, sys
uris, rounds = sys.argv[1:3], int(sys.argv[3])
size = 4 << 20
hs = []
for u in uris:
    h = nbd.NBD()
    h.connect_uri(u)
    hs.append(h)
assert all(h.get_size() == size for h in hs)
model = bytearray(size)
rng = random.Random(7)
for i in range(rounds):
    h = hs[i % 2]
    for _ in range(rng.randint(1, 4)):
        off = rng.randrange(0, size // 4096) * 4096
        n = min(rng.choice([4096, 65536, 262144]), size - off)
        kind = rng.random()
        if kind < 0.8:
            buf = rng.randbytes(n)
            h.pwrite(buf, off)
            model[off:off+n] = buf
        elif kind < 0.9:
            h.trim(n, off)
            model[off:off+n] = bytes(n)
        else:
            h.zero(n, off)
            model[off:off+n] = bytes(n)
    h.flush()
    for k, other in enumerate(hs):
        got = other.pread(size, 0)
        if got != model:
            j = next(x for x in range(size) if got[x] != model[x])
            sys.exit("round %d: server %d reads byte %d as %d, the model says %d" % (i, k, j, got[j], model[j]))
print("ok", rounds)
`

// TestRoamingOverNBD: the hand-off under a flushing python-libnbd writer
// switching between two servers many times, through the real NBD channel
// (issue 12's second test, with the servers in this process;
// TestRoamingServeProcesses runs it through two hlfs serve processes):
// every flushed byte reads back on both servers after every switch. On the
// local store and on HDFS.
func TestRoamingOverNBD(t *testing.T) {
	Begin(t)
	py := Python(t)
	for _, backend := range []string{"local", "hdfs"} {
		t.Run(backend, func(t *testing.T) {
			var st objstore.Store
			rounds := "40"
			if backend == "local" {
				ds, err := objstore.NewDirStore(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				st = ds
			} else {
				st = hdfstest.NewStore(t, hdfsbackend.Options{})
				rounds = "16"
			}
			if err := lfs.Create(st, "roam", lfs.Config{Size: 4 << 20}); err != nil {
				t.Fatal(err)
			}
			uris := roamPair(t, st, "roam")
			start := time.Now()
			out, err := exec.Command(py, "-c", roamWriterScript, uris[0], uris[1], rounds).CombinedOutput()
			if err != nil || !strings.HasPrefix(string(out), "ok ") {
				t.Fatalf("writer: %v\n%s", err, out)
			}
			t.Logf("%s: %s rounds (a hand-off each) in %v", backend, rounds, time.Since(start))
		})
	}
}
