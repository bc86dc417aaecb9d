// Package testdep is the one policy for a test whose outside dependency
// (Redis, Chromium, a proxy binary) is missing: run by hand, the test
// skips and says how to get it; in CI (CI set), where `make test` provides
// every dependency, it fails, so that a broken setup cannot pass silently.
// PostgreSQL is stricter: nearly every test needs it, so pgtest always fails
// without it.
package testdep

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Missing ends t because a dependency is missing: why says which one and
// how to get it.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set: a missing dependency is a failure)", why)
	}
	t.Skip(why)
}

// Program finds a program a test runs for real, on PATH or in the sbin
// folders a non-root PATH lacks (Debian's nginx is /usr/sbin/nginx).
// Missing, it is Missing's case: make test installs it (db/require.sh).
func Program(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	Missing(t, fmt.Sprintf("%s not found (make test installs it through db/require.sh; Debian: apt-get install %s)", name, name))
	return ""
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0
}
