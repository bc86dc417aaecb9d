package metrics_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/metrics"
)

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d", rec.Code)
	}
	return rec.Body.String()
}

// The collectors other parts wire later (rate limits, Redis, the change
// feed) are registered and show what is recorded through them.
func TestCollectorsForLaterWiring(t *testing.T) {
	m := metrics.New()
	m.RateLimitRejected("ip_failed_auth")
	m.RedisError("allow")
	m.ChangeFeedNotice("key", 20*time.Millisecond)
	m.ChangeFeedReconnected()
	text := scrape(t, m)
	for _, want := range []string{
		`keyhub_ratelimit_rejections_total{limiter="ip_failed_auth"} 1`,
		`keyhub_redis_errors_total{operation="allow"} 1`,
		`keyhub_changefeed_notifications_total{kind="key"} 1`,
		`keyhub_changefeed_lag_seconds_bucket{le="0.025"} 1`,
		`keyhub_changefeed_reconnects_total 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}

// Label values come from small fixed sets, whatever a client sends: an
// invented method is OTHER, an unusual close code is "other".
func TestLabelsAreBounded(t *testing.T) {
	m := metrics.New()
	r := chi.NewRouter()
	r.Use(m.Middleware)
	r.Get("/v1/keys/{id}", func(w http.ResponseWriter, r *http.Request) {})
	srv := httptest.NewServer(r)
	defer srv.Close()
	for _, method := range []string{"GET", "BREW", "X-" + strings.Repeat("A", 40)} {
		req, _ := http.NewRequest(method, srv.URL+"/v1/keys/3f0d6a9e-0000-4000-8000-000000000000", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	m.WSClosed(1000)
	m.WSClosed(4999)
	m.WSClosed(1234)
	text := scrape(t, m)
	for _, want := range []string{
		`keyhub_http_request_duration_seconds_count{method="GET",route="/v1/keys/{id}",status="200"} 1`,
		`keyhub_http_request_duration_seconds_count{method="OTHER",route="unmatched",status="405"} 2`,
		`keyhub_ws_closes_total{code="1000"} 1`,
		`keyhub_ws_closes_total{code="other"} 2`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if strings.Contains(text, "3f0d6a9e") || strings.Contains(text, "BREW") {
		t.Errorf("a raw path or method reached a label:\n%s", text)
	}
}

// A nil *Metrics records nothing and never panics: packages given none
// need no checks.
func TestNilMetricsIsANoOp(t *testing.T) {
	var m *metrics.Metrics
	m.AuthOutcome("jwt", nil)
	m.KeyCacheHit()
	m.KeyCacheMiss()
	m.KeyCacheNegativeHit()
	m.WSOpened(keyhub.TierFree)
	m.WSEnded(keyhub.TierFree)
	m.WSClosed(1000)
	m.WSMessageIn()
	m.WSMessageOut()
	m.LastUsedFlushFailed("users")
	m.ChangeFeedNotice("key", time.Second)
	m.ChangeFeedReconnected()
	m.RateLimitRejected("key")
	m.RedisError("allow")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	if got := m.Middleware(h); got == nil {
		t.Fatal("nil Middleware dropped the handler")
	}
	if rt := m.InstrumentJWKS(http.DefaultTransport); rt != http.DefaultTransport {
		t.Fatal("nil InstrumentJWKS wrapped the transport")
	}
}

// Recording on the hot path allocates nothing once a label set has been
// seen.
func TestHotPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are noise under -race; run without it (go test ./internal/metrics/)")
	}
	m := metrics.New()
	errUnknown := keyhub.Errorf(keyhub.CodeUnknownAPIKey, "unknown")
	m.AuthOutcome("api_key", errUnknown)
	m.AuthOutcome("jwt", nil)
	m.WSClosed(1000)
	m.RateLimitRejected("key")
	allocs := testing.AllocsPerRun(1000, func() {
		m.AuthOutcome("api_key", errUnknown)
		m.AuthOutcome("jwt", nil)
		m.KeyCacheHit()
		m.WSOpened(keyhub.TierPro)
		m.WSEnded(keyhub.TierPro)
		m.WSClosed(1000)
		m.WSMessageIn()
		m.RateLimitRejected("key")
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}

func TestAuthOutcomeOfAPlainError(t *testing.T) {
	m := metrics.New()
	m.AuthOutcome("jwt", errors.New("boom"))
	if !strings.Contains(scrape(t, m), `keyhub_auth_outcomes_total{code="INTERNAL",method="jwt",reason=""} 1`) {
		t.Fatal("a plain error is not counted as INTERNAL")
	}
}

// A refusal is counted by its reason where the code covers several, also
// when the error is wrapped.
func TestAuthOutcomeCountsReasons(t *testing.T) {
	m := metrics.New()
	m.AuthOutcome("jwt", &keyhub.Error{Code: keyhub.CodeInvalidToken, Message: "x", Reason: "unknown_kid_throttled"})
	m.AuthOutcome("jwt", fmt.Errorf("wrapped: %w", &keyhub.Error{Code: keyhub.CodeInvalidToken, Message: "x", Reason: "bad_signature"}))
	m.AuthOutcome("api_key", keyhub.ErrKeyRevoked)
	text := scrape(t, m)
	for _, want := range []string{
		`keyhub_auth_outcomes_total{code="INVALID_TOKEN",method="jwt",reason="unknown_kid_throttled"} 1`,
		`keyhub_auth_outcomes_total{code="INVALID_TOKEN",method="jwt",reason="bad_signature"} 1`,
		`keyhub_auth_outcomes_total{code="KEY_REVOKED",method="api_key",reason=""} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %s:\n%s", want, text)
		}
	}
}

// discard is a ResponseWriter that keeps nothing, so that allocation
// counts are the router's and the middleware's alone.
type discard struct{ h http.Header }

func (d discard) Header() http.Header         { return d.h }
func (d discard) Write(p []byte) (int, error) { return len(p), nil }
func (d discard) WriteHeader(int)             {}

// routerFor is a two-level chi router like keyhub's, behind a status
// recorder as the request logger puts there, with or without the metrics
// middleware.
func routerFor(m *metrics.Metrics) http.Handler {
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			next.ServeHTTP(middleware.NewWrapResponseWriter(w, req.ProtoMajor), req)
		})
	})
	r.Use(m.Middleware)
	r.Route("/v1", func(r chi.Router) {
		r.Get("/keys/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	})
	return r
}

// Observing a request allocates nothing beyond what the router does.
func TestMiddlewareAddsNoAllocation(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are noise under -race; run without it (go test ./internal/metrics/)")
	}
	allocs := func(m *metrics.Metrics) float64 {
		h := routerFor(m)
		req := httptest.NewRequest(http.MethodGet, "/v1/keys/3f0d6a9e", nil)
		w := discard{h: http.Header{}}
		h.ServeHTTP(w, req) // the first request of a label set makes its child
		return testing.AllocsPerRun(500, func() { h.ServeHTTP(w, req) })
	}
	without, with := allocs(nil), allocs(metrics.New())
	if with > without {
		t.Fatalf("the middleware adds %v allocations per request (%v without it)", with-without, without)
	}
}

func BenchmarkMiddleware(b *testing.B) {
	for _, tc := range []struct {
		name string
		m    *metrics.Metrics
	}{{"without", nil}, {"with", metrics.New()}} {
		b.Run(tc.name, func(b *testing.B) {
			h := routerFor(tc.m)
			req := httptest.NewRequest(http.MethodGet, "/v1/keys/3f0d6a9e", nil)
			w := discard{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
		})
	}
}
