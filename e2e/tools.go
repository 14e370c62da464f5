package e2e

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// SkipEnv is the only switch that skips the e2e tests: HLFS_SKIP_E2E=1.
const SkipEnv = "HLFS_SKIP_E2E"

// Tools every e2e test needs on PATH; individual tests add their own.
var baseTools = []string{"qemu-img", "nbdinfo"}

// Begin starts an e2e test. It skips the test when HLFS_SKIP_E2E=1 and
// otherwise fails it (never skips) when one of the named tools, or one of the
// tools the selected server backend needs, is missing.
func Begin(tb testing.TB, tools ...string) {
	tb.Helper()
	if os.Getenv(SkipEnv) == "1" {
		tb.Skipf("%s=1", SkipEnv)
	}
	need := append(append([]string{}, baseTools...), tools...)
	need = append(need, backendTools(backendFromEnv())...)
	var missing []string
	for _, name := range need {
		if _, err := exec.LookPath(name); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		tb.Fatalf("missing test tools %v: run scripts/install-test-deps.sh as root, or set %s=1 to skip the e2e tests",
			missing, SkipEnv)
	}
}

var (
	pythonOnce sync.Once
	pythonPath string
	pythonErr  string
)

// Python returns a python3 interpreter that can `import nbd`
// (Debian's python3-libnbd installs into the system interpreter, which a
// pyenv or venv python3 earlier on PATH cannot see). It fails tb if none can.
func Python(tb testing.TB) string {
	tb.Helper()
	pythonOnce.Do(func() {
		var tried []string
		candidates := []string{os.Getenv("HLFS_PYTHON")}
		if p, err := exec.LookPath("python3"); err == nil {
			candidates = append(candidates, p)
		}
		candidates = append(candidates, "/usr/bin/python3")
		for _, c := range candidates {
			if c == "" {
				continue
			}
			out, err := exec.Command(c, "-c", "import nbd").CombinedOutput()
			if err == nil {
				pythonPath = c
				return
			}
			tried = append(tried, c+": "+strings.TrimSpace(string(out)))
		}
		pythonErr = strings.Join(tried, "; ")
	})
	if pythonPath == "" {
		tb.Fatalf("no python3 with the nbd module (python3-libnbd): %s", pythonErr)
	}
	return pythonPath
}

// run runs a command and fails tb with its combined output if it fails.
func run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
