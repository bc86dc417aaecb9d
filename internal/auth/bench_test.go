package auth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/pgtest"
	"github.com/keyhub/keyhub/internal/postgres"
	"github.com/keyhub/keyhub/internal/usage"
)

// BenchmarkMiddlewareCachedKey measures the hot path: a request with a
// known, cached key through the auth middleware (extract, parse+checksum,
// hash, cache lookup, expiry check, last-used mark, context, the request
// counted in the key's usage) to a handler.
func BenchmarkMiddlewareCachedKey(b *testing.B) {
	pool, _ := pgtest.NewDB(b)
	store := postgres.NewStore(pool, nil)
	usage := auth.NewToucher("bench", store.TouchKeys, time.Hour, discardLogger())
	cache := auth.NewApiKeyCache(store, auth.KeyCacheConfig{TTL: time.Hour, Size: 1000, NegativeTTL: time.Minute, NegativeSize: 1000}, usage)
	authn := auth.New(auth.Config{Keys: cache, Users: store})
	k, _ := newKey(b, store, "bench@example.com")

	handler := auth.NewGate(authn, nil, nil, nil).CountUsage(benchUsage()).Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth.FromContext(r.Context()) == nil {
			panic("no principal")
		}
	}))
	req := httptest.NewRequest(http.MethodGet, "/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+k.Secret)
	if _, err := cache.Verify(context.Background(), k.Secret, keyhub.RequestMeta{}); err != nil {
		b.Fatal(err)
	}
	w := httptest.NewRecorder()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		handler.ServeHTTP(w, req)
	}
}

// BenchmarkMiddlewareCachedKeyAllowedCIDRs is the hot path for a key
// restricted to 32 networks, the request coming from the last one: the
// address check must add no allocation.
func BenchmarkMiddlewareCachedKeyAllowedCIDRs(b *testing.B) {
	pool, _ := pgtest.NewDB(b)
	store := postgres.NewStore(pool, nil)
	cache := auth.NewApiKeyCache(store, auth.KeyCacheConfig{TTL: time.Hour, Size: 1000, NegativeTTL: time.Minute, NegativeSize: 1000}, nil)
	authn := auth.New(auth.Config{Keys: cache, Users: store})
	k, _ := newKey(b, store, "bench@example.com")
	// 31 networks that do not hold the client, then the one that does
	// (httptest's requests come from 192.0.2.1).
	if _, err := pool.Exec(context.Background(), `UPDATE api_keys SET allowed_cidrs =
		ARRAY(SELECT ('10.' || n || '.0.0/16')::cidr FROM generate_series(1, 31) n) || '192.0.2.0/24'::cidr WHERE id = $1`, k.Key.ID); err != nil {
		b.Fatal(err)
	}
	handler := auth.NewGate(authn, nil, nil, nil).Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth.FromContext(r.Context()) == nil {
			panic("no principal")
		}
	}))
	req := httptest.NewRequest(http.MethodGet, "/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+k.Secret)
	if p, err := cache.Verify(context.Background(), k.Secret, keyhub.RequestMeta{}); err != nil || len(p.AllowedNets) != 32 {
		b.Fatalf("%v %v", p, err)
	}
	w := httptest.NewRecorder()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		handler.ServeHTTP(w, req)
	}
}

// BenchmarkMiddlewareCachedKeyParallel is the same under contention.
func BenchmarkMiddlewareCachedKeyParallel(b *testing.B) {
	pool, _ := pgtest.NewDB(b)
	store := postgres.NewStore(pool, nil)
	cache := auth.NewApiKeyCache(store, auth.KeyCacheConfig{TTL: time.Hour, Size: 1000, NegativeTTL: time.Minute, NegativeSize: 1000}, nil)
	authn := auth.New(auth.Config{Keys: cache, Users: store})
	k, _ := newKey(b, store, "bench@example.com")
	handler := auth.NewGate(authn, nil, nil, nil).CountUsage(benchUsage()).Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	if _, err := cache.Verify(context.Background(), k.Secret, keyhub.RequestMeta{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer() // the database setup above is not the hot path
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, "/v1/me", nil)
		req.Header.Set("X-API-Key", k.Secret)
		w := httptest.NewRecorder()
		for pb.Next() {
			handler.ServeHTTP(w, req)
		}
	})
}

// BenchmarkMiddlewareCachedJWT is a dashboard request whose access token
// was verified before: hash, token cache, user cache, context.
func BenchmarkMiddlewareCachedJWT(b *testing.B) {
	env := newTokenEnv(b, 100, time.Second)
	tok := env.token(b, env.issuer, "bench@example.com", time.Hour)
	if _, err := env.authn.ResolveToken(context.Background(), tok); err != nil {
		b.Fatal(err)
	}
	handler := auth.NewGate(env.authn, nil, nil, nil).Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth.FromContext(r.Context()) == nil {
			panic("no principal")
		}
	}))
	req := httptest.NewRequest(http.MethodGet, "/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		handler.ServeHTTP(w, req)
	}
	if n := env.verifier.verifications.Load(); n != 1 {
		b.Fatalf("%d signature verifications, want 1", n)
	}
}

// benchUsage counts requests as production does, never flushing during
// the benchmark.
func benchUsage() *usage.Counter {
	return usage.New(func(context.Context, []keyhub.UsageCount) error { return nil }, time.Hour, discardLogger())
}
