package hdfsbackend

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/colinmarc/hdfs/v2/hadoopconf"
	"github.com/hlfs/hlfs/internal/objstore"
)

// The testdata answers were recorded from the mini-cluster of testdata/hdfs
// (Hadoop 3.5.0, 3 DataNodes, 4 MiB blocks): a 10014744-byte segment of a
// volume created with --replication 2, and a missing file.

func TestParseBlockLocations(t *testing.T) {
	body, err := os.ReadFile("testdata/getfileblocklocations.json")
	if err != nil {
		t.Fatal(err)
	}
	locs, err := ParseBlockLocations(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(locs) != 3 {
		t.Fatalf("%d blocks, want 3: %+v", len(locs), locs)
	}
	var next int64
	perNode := map[string]int64{}
	for i, b := range locs {
		if b.Offset != next {
			t.Errorf("block %d at %d, want %d", i, b.Offset, next)
		}
		next += b.Length
		if len(b.Names) != 2 || len(b.Hosts) != 2 || b.Corrupt {
			t.Errorf("block %d: %+v, want 2 replicas", i, b)
		}
		for k, n := range b.Names {
			if !strings.HasPrefix(n, "127.0.0.1:") || b.Hosts[k] != "127.0.0.1" {
				t.Errorf("block %d replica %d: name %q host %q", i, k, n, b.Hosts[k])
			}
			perNode[n] += b.Length
		}
	}
	if next != 10014744 {
		t.Errorf("blocks cover %d bytes, the file has 10014744", next)
	}
	var total int64
	for _, n := range perNode {
		total += n
	}
	if len(perNode) != 3 || total != 2*10014744 {
		t.Errorf("per DataNode %v: want 3 DataNodes holding 2 x 10014744 bytes", perNode)
	}

	for _, bad := range []string{``, `{}`, `{"BlockLocations":{"BlockLocation":[{"offset":-1}]}}`,
		`{"BlockLocations":{"BlockLocation":[{"names":["a:1"],"hosts":["a","b"]}]}}`, `<html>`} {
		if _, err := ParseBlockLocations([]byte(bad)); err == nil {
			t.Errorf("ParseBlockLocations(%q) did not fail", bad)
		}
	}
}

func TestWebHDFSAddrs(t *testing.T) {
	for _, c := range []struct {
		conf map[string]string
		nns  []string
		want string
	}{
		{map[string]string{"dfs.namenode.http-address": "127.0.0.1:41813"}, []string{"127.0.0.1:9000"}, "http://127.0.0.1:41813"},
		{map[string]string{"dfs.namenode.http-address": "0.0.0.0:9870"}, []string{"nn1:8020"}, "http://nn1:9870"},
		{nil, []string{"nn1:8020", "nn2:8020"}, "http://nn1:9870 http://nn2:9870"},
		{map[string]string{"dfs.namenode.http-address.ns.b": "nb:9870", "dfs.namenode.http-address.ns.a": "na:9870"},
			[]string{"na:8020"}, "http://na:9870 http://nb:9870"},
		{nil, nil, ""},
	} {
		got := strings.Join(webHDFSAddrs(hadoopconf.HadoopConf(c.conf), c.nns), " ")
		if got != c.want {
			t.Errorf("webHDFSAddrs(%v, %v) = %q, want %q", c.conf, c.nns, got, c.want)
		}
	}
}

// TestBlockLocationsOverHTTP asks a fake NameNode that answers with the
// recorded bodies: the request's form, and each kind of failure.
func TestBlockLocationsOverHTTP(t *testing.T) {
	found, _ := os.ReadFile("testdata/getfileblocklocations.json")
	missing, _ := os.ReadFile("testdata/filenotfound.json")
	var gotPath, gotQuery string
	nn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotQuery = r.URL.Path, r.URL.RawQuery
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/seg/0000000000000001"):
			w.Write(found)
		case strings.HasSuffix(r.URL.Path, "/standby"):
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"RemoteException":{"exception":"StandbyException","message":"Operation category READ is not supported in state standby"}}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write(missing)
		}
	}))
	defer nn.Close()
	// A web server that is not WebHDFS (dfs.webhdfs.enabled off answers so).
	html := httptest.NewServer(http.NotFoundHandler())
	defer html.Close()
	// An address nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()

	s := &Store{uri: "hdfs://nn:9000/pool", root: "/pool", user: "alice", webhdfs: []string{nn.URL}}
	ctx := context.Background()
	locs, err := s.BlockLocations(ctx, "", "vm/seg/0000000000000001")
	if err != nil || len(locs) != 3 {
		t.Fatalf("BlockLocations: %v, %d blocks", err, len(locs))
	}
	if gotPath != "/webhdfs/v1/pool/vm/seg/0000000000000001" || gotQuery != "op=GETFILEBLOCKLOCATIONS&user.name=alice" {
		t.Errorf("asked %s?%s", gotPath, gotQuery)
	}
	if _, err := s.BlockLocations(ctx, "", "vm/seg/0000000000000002"); !errors.Is(err, objstore.ErrNotExist) {
		t.Errorf("missing object: %v, want ErrNotExist", err)
	}
	for _, c := range []struct{ base, want string }{
		{dead, "is unreachable"},
		{html.URL, "answered 404 Not Found without a WebHDFS reply"},
		{"127.0.0.1:9870", "not a WebHDFS address"},
	} {
		_, err := s.BlockLocations(ctx, c.base, "vm/seg/0000000000000001")
		if !errors.Is(err, ErrWebHDFS) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("WebHDFS at %s: %v, want one line wrapping ErrWebHDFS saying %q", c.base, err, c.want)
		}
	}
	// With several addresses, a standby or unreachable one is passed over.
	s.webhdfs = []string{dead, nn.URL}
	if locs, err := s.BlockLocations(ctx, "", "vm/seg/0000000000000001"); err != nil || len(locs) != 3 {
		t.Errorf("after an unreachable address: %v", err)
	}
	if _, err := s.BlockLocations(ctx, nn.URL, "standby"); !errors.Is(err, ErrWebHDFS) || !strings.Contains(err.Error(), "standby NameNode") {
		t.Errorf("standby: %v", err)
	}
	s.webhdfs = nil
	if _, err := s.BlockLocations(ctx, "", "vm/seg/0000000000000001"); !errors.Is(err, ErrWebHDFS) {
		t.Errorf("no address: %v", err)
	}
}

// FuzzParseBlockLocations: whatever a NameNode (or something posing as
// one) answers, parsing returns blocks that pass its own checks, or an
// error; never a panic.
func FuzzParseBlockLocations(f *testing.F) {
	for _, name := range []string{"testdata/getfileblocklocations.json", "testdata/filenotfound.json"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		locs, err := ParseBlockLocations(b)
		if err != nil {
			return
		}
		for _, l := range locs {
			if l.Offset < 0 || l.Length < 0 || (len(l.Hosts) > 0 && len(l.Hosts) != len(l.Names)) {
				t.Fatalf("accepted %+v", l)
			}
		}
	})
}
