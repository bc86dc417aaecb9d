package httpapi_test

import (
	"io"
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
		{"process", map[string]string{"RATE_LIMIT_TIER_RPM": "free=100000000"}, http.StatusOK},
		{"redis", map[string]string{"RATE_LIMIT_TIER_RPM": "free=100000000", "REDIS_URL": "redis"}, http.StatusOK},
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

// BenchmarkRateLimitedRequestHTTP is the same request over real loopback
// HTTP from 32 concurrent clients: ns/op is the inverse of throughput.
func BenchmarkRateLimitedRequestHTTP(b *testing.B) {
	for _, backend := range []string{"process", "redis"} {
		b.Run(backend, func(b *testing.B) {
			vars := map[string]string{"RATE_LIMIT_TIER_RPM": "free=100000000"}
			if backend == "redis" {
				url := os.Getenv("KEYHUB_TEST_REDIS_URL")
				if url == "" {
					b.Skip("KEYHUB_TEST_REDIS_URL is not set")
				}
				vars["REDIS_URL"] = url
			}
			env := apitest.New(b, vars)
			var key struct {
				Key string `json:"key"`
			}
			env.Post(b, "/v1/keys", env.Token(b, uniqueEmail("bench")), map[string]any{"name": "bench"}).Want(b, http.StatusCreated, "").JSON(b, &key)
			client := env.Server.Client()
			client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
			b.SetParallelism(16) // × GOMAXPROCS (2 here) = 32 clients
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, env.URL+"/v1/me", nil)
					req.Header.Set("X-API-Key", key.Key)
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		})
	}
}
