package e2e

import (
	"fmt"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	if os.Getenv(SkipEnv) != "1" {
		fmt.Fprintf(os.Stderr, "e2e: server backend %q (HLFS_E2E_SERVER), skip all with %s=1\n", backendFromEnv(), SkipEnv)
	}
	code := m.Run()
	CleanupBinaries()
	os.Exit(code)
}
