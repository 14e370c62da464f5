package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteModel checks the crash checker itself on a hand-written log: it
// must accept every legal post-crash image and reject lost flushed writes.
func TestWriteModel(t *testing.T) {
	const bs = 4096
	blk := func(b byte) []byte { return bytes.Repeat([]byte{b}, bs) }
	sha := func(b byte) string {
		s := sha256.Sum256(blk(b))
		return hex.EncodeToString(s[:])
	}
	log := strings.Join([]string{
		"B 1",
		"W 0 " + sha(1),
		"W 4096 " + sha(2),
		"W 0 " + sha(3), // supersedes 1 before the flush
		"F 3",
		"W 0 " + sha(4), // unflushed: 3 or 4 after a crash
		"W 8192 " + sha(5),
		"U 8192 " + sha(5),  // FUA acked: durable
		"W 12288 " + sha(6), // unflushed, never durable: zero or 6
		"B 2",               // the server died; a new writer starts
		"W 4096 " + sha(7),
		"F 4", // 7 durable at 4096; block 0 is still 3 or 4
		"",
	}, "\n")
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	m := replayWriterLog(t, path)
	image := func(b0, b1, b2, b3, b4 byte) []byte {
		return bytes.Join([][]byte{blk(b0), blk(b1), blk(b2), blk(b3), blk(b4)}, nil)
	}
	for _, tc := range []struct {
		name string
		img  []byte
		bad  int
	}{
		{"latest everywhere", image(4, 7, 5, 6, 0), 0},
		{"flushed values only", image(3, 7, 5, 0, 0), 0},
		{"lost flush at 0", image(1, 7, 5, 0, 0), 1},
		{"lost second writer's flush", image(3, 2, 5, 0, 0), 1},
		{"lost FUA write", image(3, 7, 0, 0, 0), 1},
		{"garbage in untouched block", image(3, 7, 5, 0, 9), 1},
		{"all zero", image(0, 0, 0, 0, 0), 3},
	} {
		problems, summary := m.verify(tc.img, bs)
		if len(problems) != tc.bad {
			t.Errorf("%s: %d problems, want %d: %q (%s)", tc.name, len(problems), tc.bad, problems, summary)
		}
	}
}
