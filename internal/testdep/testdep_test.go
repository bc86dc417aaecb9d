package testdep_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/keyhub/keyhub/internal/testdep"
)

// childEnv makes the test binary run TestMissingChild for real.
const childEnv = "KEYHUB_TESTDEP_CHILD"

func TestMissingChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("run by TestMissing in a child process")
	}
	testdep.Missing(t, "no frobnicator on PATH")
}

// Missing skips by hand and fails in CI: each case runs the child test in
// a process of its own, with and without CI.
func TestMissing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ci       string
		wantFail bool
		wantOut  string
	}{
		{"", false, "--- SKIP: TestMissingChild"},
		{"1", true, "--- FAIL: TestMissingChild"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissingChild$", "-test.v")
		cmd.Env = append(os.Environ(), childEnv+"=1", "CI="+tc.ci)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != tc.wantFail || !strings.Contains(string(out), tc.wantOut) || !strings.Contains(string(out), "no frobnicator on PATH") {
			t.Fatalf("CI=%q: err %v, output:\n%s", tc.ci, err, out)
		}
	}
}
