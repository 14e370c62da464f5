package blockmap

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayout keeps the map pure: it imports no hlfs package but segment.
func TestLayout(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/hlfs/hlfs/") && p != "github.com/hlfs/hlfs/segment" && p != "github.com/hlfs/hlfs/internal/blockmap" {
			t.Errorf("blockmap depends on %s", p)
		}
	}
}
