package snapshot

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayout keeps the pure cores pure: the snapshot tree and the block map
// import no hlfs package but segment (no store, no engine, no server).
func TestLayout(t *testing.T) {
	const mod = "github.com/hlfs/hlfs/"
	for _, pkg := range []string{mod + "snapshot", mod + "internal/blockmap"} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, p := range strings.Fields(string(out)) {
			if strings.HasPrefix(p, mod) && p != mod+"segment" && p != pkg {
				t.Errorf("%s depends on %s", pkg, p)
			}
		}
	}
}
