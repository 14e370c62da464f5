// Package hdfstest connects tests to the HDFS mini-cluster of
// testdata/hdfs: it finds the cluster, gives each test a fresh folder, and
// stops and restarts DataNodes and the NameNode through the cluster's
// control channel.
//
// Start the cluster first, then run the tests with its environment:
//
//	eval "$(scripts/hdfs-up.sh)"
//	go test ./hdfsbackend/...
//	scripts/hdfs-down.sh
//
// Without HLFS_HDFS_URI a test using URI fails, saying so, unless
// HLFS_SKIP_HDFS=1, which skips it. Control and the tests that use it
// change the shared cluster: such tests must not run in parallel with other
// HDFS tests and must leave every node running.
package hdfstest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hlfs/hlfs/hdfsbackend"
	"github.com/hlfs/hlfs/internal/objstore"
)

// Environment variables read here (scripts/hdfs-up.sh prints them).
const (
	// EnvURI names the cluster, e.g. hdfs://127.0.0.1:9000.
	EnvURI = "HLFS_HDFS_URI"
	// EnvSkip set to 1 skips HDFS tests when EnvURI is unset.
	EnvSkip = "HLFS_SKIP_HDFS"
	// EnvControl is the control channel's host:port.
	EnvControl = "HLFS_HDFS_CONTROL"
	// EnvDir is the cluster's state folder; its control.port file is used
	// when EnvControl is unset. Default /tmp/hlfs-hdfs.
	EnvDir = "HLFS_HDFS_DIR"
)

// URI returns the cluster's URI without a trailing slash. When EnvURI is
// unset the test fails, or is skipped if EnvSkip is 1.
func URI(t testing.TB) string {
	t.Helper()
	uri := os.Getenv(EnvURI)
	if uri == "" {
		if os.Getenv(EnvSkip) == "1" {
			t.Skipf("HDFS test skipped: %s unset and %s=1", EnvURI, EnvSkip)
		}
		t.Fatalf("%s is not set: start the HDFS mini-cluster with `eval \"$(scripts/hdfs-up.sh)\"` "+
			"(stop it with scripts/hdfs-down.sh), or set %s=1 to skip the HDFS tests", EnvURI, EnvSkip)
	}
	return strings.TrimSuffix(uri, "/")
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// FolderURI returns the URI of a folder no other test uses:
// URI/hlfs-test/<test name>-<random>.
func FolderURI(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := unsafeChars.ReplaceAllString(t.Name(), "_")
	return URI(t) + "/hlfs-test/" + name + "-" + hex.EncodeToString(b[:])
}

// NewStore opens a Store on a fresh folder (FolderURI) and, when the test
// ends, removes what the test left there and closes the Store.
func NewStore(t testing.TB, opts hdfsbackend.Options) *hdfsbackend.Store {
	t.Helper()
	uri := FolderURI(t)
	opts.Create = true
	s, err := hdfsbackend.Open(uri, opts)
	if err != nil {
		t.Fatalf("open %s: %v", uri, err)
	}
	t.Cleanup(func() {
		if err := RemoveAll(s, ""); err != nil {
			t.Logf("cleanup of %s: %v", uri, err)
		}
		s.Close()
	})
	return s
}

// RemoveAll removes dir ("" for the store's root: its contents) and
// everything below it.
func RemoveAll(s objstore.Store, dir string) error {
	names, err := s.List(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		child := n
		if dir != "" {
			child = dir + "/" + n
		}
		err := s.Remove(child)
		if err != nil && !errors.Is(err, objstore.ErrNotExist) {
			if err := RemoveAll(s, child); err != nil {
				return err
			}
		}
	}
	if dir == "" {
		return nil
	}
	if err := s.Remove(dir); err != nil && !errors.Is(err, objstore.ErrNotExist) {
		return err
	}
	return nil
}

// ControlAddr returns the control channel's address: EnvControl, or the
// control.port file in EnvDir (default /tmp/hlfs-hdfs).
func ControlAddr() (string, error) {
	if a := os.Getenv(EnvControl); a != "" {
		return a, nil
	}
	dir := os.Getenv(EnvDir)
	if dir == "" {
		dir = "/tmp/hlfs-hdfs"
	}
	b, err := os.ReadFile(filepath.Join(dir, "control.port"))
	if err != nil {
		return "", fmt.Errorf("hdfstest: no %s and %w: is the mini-cluster running (scripts/hdfs-up.sh)?", EnvControl, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Control sends one command to the mini-cluster and returns its answer
// without the "OK" prefix, or an error with the "ERR" text. Commands:
//
//	status
//	stop-datanode N [nomark]  N in 0..datanodes-1; without nomark the
//	                          NameNode is told at once that N is dead
//	restart-datanode N        start N again (or restart a running one)
//	stop-namenode             shut the NameNode down (DataNodes keep running)
//	start-namenode            start it again on the same port; waits until
//	restart-namenode            it is active and out of safe mode
//	shutdown                  stop the whole cluster
func Control(cmd string) (string, error) {
	addr, err := ControlAddr()
	if err != nil {
		return "", err
	}
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "", fmt.Errorf("hdfstest: control channel %s: %w", addr, err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Minute)); err != nil {
		return "", err
	}
	if _, err := fmt.Fprintf(c, "%s\n", cmd); err != nil {
		return "", fmt.Errorf("hdfstest: control %q: %w", cmd, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("hdfstest: control %q: no answer: %w", cmd, err)
	}
	line = strings.TrimSpace(line)
	if rest, ok := strings.CutPrefix(line, "OK"); ok {
		return strings.TrimSpace(rest), nil
	}
	return "", fmt.Errorf("hdfstest: control %q: %s", cmd, line)
}

// MustControl is Control for tests: it fails t on an error.
func MustControl(t testing.TB, cmd string) string {
	t.Helper()
	out, err := Control(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hdfs control %q: %s", cmd, out)
	return out
}
