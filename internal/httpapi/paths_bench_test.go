package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// BenchmarkCachedKeyPaths runs the requests of the load harness's ratio
// rows (cmd/keyhub-load) in process, through the whole handler (router,
// log line, metrics, CORS, gate, handler), with a cached mk_ key: their
// allocations and their CPU profiles (-cpuprofile) say what a path costs
// over /healthz without the noise of a shared machine's throughput.
func BenchmarkCachedKeyPaths(b *testing.B) {
	const verifyToken = "bench-verify-token-0123456789abcdef"
	env := apitest.New(b, map[string]string{
		"RATE_LIMIT_TIER_RPM": "free=100000000,pro=100000000,team=100000000,enterprise=100000000",
		"PRODUCT_SCOPES":      "app:read,app:write",
		"VERIFY_TOKENS":       verifyToken,
		"LOG_LEVEL":           "info", // as served: the request line, no debug lines
	})
	jwt := env.Token(b, uniqueEmail("bench"))
	// The listing's page: one active key and 19 revoked, as the harness
	// lists them (the free tier holds one active key at a time).
	var key api.CreatedKey
	for i := range 20 {
		env.Post(b, "/v1/keys", jwt, map[string]any{"name": "bench"}).Want(b, http.StatusCreated, "").JSON(b, &key)
		if i < 19 {
			env.Delete(b, "/v1/keys/"+key.ID.String(), jwt).Want(b, http.StatusOK, "")
		}
	}
	verifyBody, err := json.Marshal(api.VerifyKeyRequest{Key: key.Secret})
	if err != nil {
		b.Fatal(err)
	}
	env.Logs.Discard()
	for _, tc := range []struct {
		name, method, target string
		header               map[string]string
		body                 []byte
	}{
		{name: "healthz", method: http.MethodGet, target: "/healthz"},
		{name: "me", method: http.MethodGet, target: "/v1/me", header: map[string]string{"X-API-Key": key.Secret}},
		// Forward auth as nginx asks it (the README's block).
		{name: "authz", method: http.MethodGet, target: "/v1/authz?scope=keys:read&refuse_as=403",
			header: map[string]string{"X-API-Key": key.Secret, "X-Original-Method": "GET", "X-Original-URI": "/app/tasks"}},
		{name: "verify", method: http.MethodPost, target: "/v1/keys/verify", body: verifyBody,
			header: map[string]string{"Authorization": "Bearer " + verifyToken, "Content-Type": "application/json"}},
		{name: "keys20", method: http.MethodGet, target: "/v1/keys?limit=20", header: map[string]string{"X-API-Key": key.Secret}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest(tc.method, tc.target, nil)
			for name, value := range tc.header {
				req.Header.Set(name, value)
			}
			body := bytes.NewReader(tc.body)
			readBody := io.NopCloser(body)
			w := &discardWriter{header: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				body.Reset(tc.body)
				req.Body = readBody
				w.reset()
				env.App.Handler.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("%s %s: %d", tc.method, tc.target, w.status)
				}
			}
		})
	}
}

// discardWriter is a ResponseWriter that keeps the status and nothing
// else, reused across requests: the benchmark measures the server's
// allocations, not a recorder's.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) reset() {
	clear(w.header)
	w.status = 0
}

func (w *discardWriter) Header() http.Header { return w.header }

// SetReadDeadline and SetWriteDeadline are net/http's own writer's (an
// unsupported deadline would allocate its error on every request).
func (w *discardWriter) SetReadDeadline(time.Time) error  { return nil }
func (w *discardWriter) SetWriteDeadline(time.Time) error { return nil }

func (w *discardWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}
