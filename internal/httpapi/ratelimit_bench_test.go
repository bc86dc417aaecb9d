package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/keyhub/keyhub/internal/apitest"
)

// BenchmarkRateLimitedRequest is GET /v1/me with a cached API key through
// the whole handler (router, logging, auth, rate limit, handler), with
// limits in process, in Redis, and in Redis for a key already refused
// (answered from the process's memory of the refusal).
func BenchmarkRateLimitedRequest(b *testing.B) {
	for _, tc := range []struct {
		name   string
		vars   map[string]string
		status int
	}{
		{"process", map[string]string{"RATE_LIMIT_TIER_RPM": "free=1000000000"}, http.StatusOK},
		{"redis", map[string]string{"RATE_LIMIT_TIER_RPM": "free=1000000000", "REDIS_URL": "redis"}, http.StatusOK},
		{"redis_refused", map[string]string{"RATE_LIMIT_TIER_RPM": "free=1", "REDIS_URL": "redis"}, http.StatusTooManyRequests},
	} {
		b.Run(tc.name, func(b *testing.B) {
			if tc.vars["REDIS_URL"] != "" {
				url := os.Getenv("KEYHUB_TEST_REDIS_URL")
				if url == "" {
					b.Skip("KEYHUB_TEST_REDIS_URL is not set")
				}
				tc.vars["REDIS_URL"] = url
			}
			env := apitest.New(b, tc.vars)
			jwt := env.Token(b, uniqueEmail("bench"))
			var key struct {
				Key string `json:"key"`
			}
			env.Post(b, "/v1/keys", jwt, map[string]any{"name": "bench"}).Want(b, http.StatusCreated, "").JSON(b, &key)
			env.Get(b, "/v1/me", key.Key) // caches the key (and spends free=1's one request)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest(http.MethodGet, "/v1/me", nil)
				req.Header.Set("X-API-Key", key.Key)
				for pb.Next() {
					w := httptest.NewRecorder()
					env.App.Handler.ServeHTTP(w, req)
					if w.Code != tc.status {
						b.Fatalf("status %d, want %d", w.Code, tc.status)
					}
				}
			})
		})
	}
}
