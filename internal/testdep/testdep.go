// Package testdep is the one policy for a test whose outside dependency
// (Redis, Chromium, a proxy binary) is missing: run by hand, the test
// skips and says how to get it; in CI (CI set), where `make test` provides
// every dependency, it fails, so that a broken setup cannot pass silently.
// PostgreSQL is stricter: nearly every test needs it, so pgtest always fails
// without it.
package testdep

import (
	"os"
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
