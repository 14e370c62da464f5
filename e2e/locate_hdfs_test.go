package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hlfs/hlfs/hdfsbackend/hdfstest"
)

// locateOutput is the part of `hlfs locate --json` the tests read.
type locateOutput struct {
	Volume         string `json:"volume"`
	Objects        int    `json:"objects"`
	StoredBytes    int64  `json:"stored_bytes"`
	UnlocatedBytes int64  `json:"unlocated_bytes"`
	Hosts          []struct {
		Host     string  `json:"host"`
		Hostname string  `json:"hostname"`
		Bytes    int64   `json:"bytes"`
		Share    float64 `json:"share"`
	} `json:"hosts"`
}

// TestHDFSLocate runs `hlfs locate` on the mini-cluster (3 DataNodes, 4 MiB
// blocks) for a volume created with --replication 2 and written in three
// opens (three segments): every host is one of the cluster's DataNodes,
// best first, and their bytes add up to 2 x the stored segment bytes
// (which `hlfs du` counts from the store). A WebHDFS address that cannot
// answer, nobody listening or not WebHDFS, is one clear error line.
func TestHDFSLocate(t *testing.T) {
	s := newHDFSServer(t, []string{"--replication", "2"}, Volume{Name: "loc", Size: 64 << 20})
	rng := rand.New(rand.NewSource(1))
	img := filepath.Join(t.TempDir(), "img")
	for i := 0; i < 3; i++ { // each import is an open: a segment of its own
		data := make([]byte, (6+i)<<20)
		rng.Read(data)
		if err := os.WriteFile(img, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s.hlfs("import", img, "loc")
	}
	var rep locateOutput
	if err := json.Unmarshal([]byte(s.hlfs("locate", "loc", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	var du struct {
		SegmentBytes int64 `json:"segment_bytes"`
		Segments     int   `json:"segments"`
	}
	if err := json.Unmarshal([]byte(s.hlfs("du", "loc", "--json")), &du); err != nil {
		t.Fatal(err)
	}
	if rep.Volume != "loc" || rep.Objects != du.Segments || rep.StoredBytes != du.SegmentBytes || rep.Objects < 3 || rep.UnlocatedBytes != 0 {
		t.Fatalf("locate: %+v; du: %d bytes in %d segments", rep, du.SegmentBytes, du.Segments)
	}
	// The cluster's DataNodes, by transfer address: "... dn0=127.0.0.1:P:running ...".
	status := hdfstest.MustControl(t, "status")
	var total int64
	var shares float64
	for i, h := range rep.Hosts {
		if !strings.Contains(status, "="+h.Host+":running") || h.Hostname != "127.0.0.1" {
			t.Errorf("host %q (%s) is not a running DataNode of the cluster: %s", h.Host, h.Hostname, status)
		}
		if h.Bytes <= 0 || h.Bytes > rep.StoredBytes || (i > 0 && h.Bytes > rep.Hosts[i-1].Bytes) {
			t.Errorf("host %d: %d bytes of %d, after %+v", i, h.Bytes, rep.StoredBytes, rep.Hosts[:i])
		}
		total += h.Bytes
		shares += h.Share
	}
	if len(rep.Hosts) < 2 || len(rep.Hosts) > 3 {
		t.Errorf("%d hosts, want 2 or 3 of the 3 DataNodes", len(rep.Hosts))
	}
	if total != 2*rep.StoredBytes || shares < 1.999 || shares > 2.001 {
		t.Errorf("hosts hold %d bytes (shares %.4f), want replication 2 x %d stored", total, shares, rep.StoredBytes)
	}
	t.Logf("locate: %d bytes in %d segments on %+v", rep.StoredBytes, rep.Objects, rep.Hosts)

	// The text form: a header line, then one line per host, best first.
	text := s.hlfs("locate", "loc")
	if lines := strings.Split(strings.TrimSpace(text), "\n"); len(lines) != 2+len(rep.Hosts) ||
		!strings.HasPrefix(lines[1], "HOST") || !strings.HasPrefix(lines[2], rep.Hosts[0].Host) {
		t.Errorf("locate prints:\n%s", text)
	}

	// WebHDFS that cannot answer: nobody listening; the NameNode's RPC port.
	u, err := url.Parse(hdfstest.URI(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ addr, want string }{
		{"http://127.0.0.1:" + strconv.Itoa(freePort(t)), "is unreachable"},
		{"http://" + u.Host, "without a WebHDFS reply"},
	} {
		cmd := exec.Command(s.bin, "--store", s.StoreURI(), "locate", "loc", "--webhdfs", c.addr)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		msg := stderr.String()
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || stdout.Len() != 0 || strings.Count(msg, "\n") != 1 ||
			!strings.HasPrefix(msg, "hlfs: locate loc: the NameNode's WebHDFS cannot answer: "+c.addr+" ") ||
			!strings.Contains(msg, c.want) || !strings.Contains(msg, "dfs.webhdfs.enabled") {
			t.Errorf("locate --webhdfs %s: %v\nstdout %q\nstderr %q", c.addr, err, stdout.String(), msg)
		}
	}
}
