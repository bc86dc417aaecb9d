package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/keyhub/keyhub/internal/apitest"
)

// BenchmarkProxyCachedKey is one request through a gateway route with a
// cached key: admission, the signed identity, the second hop to the
// upstream (a real listener) and the copy of its answer. Its B/op is
// where a per-request buffer would show (ReverseProxy allocates 32 KiB per
// answer without a BufferPool).
func BenchmarkProxyCachedKey(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello from the product\n")
	}))
	b.Cleanup(up.Close)
	env := apitest.New(b, map[string]string{"GATEWAY_ROUTES": "/app/ " + up.URL + " strip_prefix", "LOG_LEVEL": "error",
		"RATE_LIMIT_TIER_RPM": "free=100000000,pro=100000000,team=100000000,enterprise=100000000"})
	key, _ := newKey(b, env, nil)
	handler := env.Server.Config.Handler
	req := httptest.NewRequest(http.MethodGet, "/app/hello", nil)
	req.Header.Set("X-API-Key", key)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
