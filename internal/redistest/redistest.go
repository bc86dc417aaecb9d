// Package redistest gives tests the Redis that `make test` starts
// (db/redis.sh exports KEYHUB_TEST_REDIS_URL).
package redistest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyhub/keyhub/internal/testdep"
)

// URL returns the test Redis's URL. Without KEYHUB_TEST_REDIS_URL the test
// is skipped, except in CI (CI set), where a missing Redis is a failure:
// `make test` always provides one.
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("KEYHUB_TEST_REDIS_URL")
	if url == "" {
		testdep.Missing(t, "KEYHUB_TEST_REDIS_URL is not set (make test starts a Redis)")
	}
	return url
}

// Client returns a client of the test Redis, closed when the test ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(URL(t))
	if err != nil {
		t.Fatalf("KEYHUB_TEST_REDIS_URL: %v", err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("test Redis: %v", err)
	}
	return c
}
