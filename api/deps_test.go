package api_test

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestDepsStdlibAndUUID: package api is the contract the public client
// compiles, so it may depend on the standard library and uuid only (not on
// the server's domain, whose tier table once came along through a mapper),
// and nothing under api/ may reach an internal package. Asked of the go
// tool, so an indirect import counts as much as a direct one.
func TestDepsStdlibAndUUID(t *testing.T) {
	t.Parallel()
	deps := goListDeps(t, ".")
	for _, dep := range deps {
		if dep != "github.com/keyhub/keyhub/api" && dep != "github.com/google/uuid" {
			t.Errorf("package api depends on %s: it may import only the standard library and github.com/google/uuid", dep)
		}
	}
	if len(deps) == 0 {
		t.Fatal("go list reported no dependency at all, not even api itself: the check saw nothing")
	}
	for _, dep := range goListDeps(t, "./...") {
		if strings.HasPrefix(dep, "github.com/keyhub/keyhub/internal/") {
			t.Errorf("a package under api/ depends on %s", dep)
		}
	}
}

// goListDeps lists the non-standard packages pattern depends on
// (including itself), without tests.
func goListDeps(t *testing.T, pattern string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pattern).Output()
	if err != nil {
		var stderr string
		if exitErr := (*exec.ExitError)(nil); errors.As(err, &exitErr) {
			stderr = string(exitErr.Stderr)
		}
		t.Fatalf("go list -deps %s: %v\n%s", pattern, err, stderr)
	}
	return strings.Fields(string(out))
}
