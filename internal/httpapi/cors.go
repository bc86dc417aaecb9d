package httpapi

import (
	"net/http"
	"time"

	"github.com/go-chi/cors"

	"github.com/keyhub/keyhub/internal/origin"
)

// exposedHeaders are the response headers a cross-origin dashboard may
// read: the request id (for support) and the rate-limit headers (IETF
// draft-ietf-httpapi-ratelimit-headers structured fields, and Retry-After),
// so a dashboard can say when to retry.
var exposedHeaders = []string{"X-Request-Id", "RateLimit-Policy", "RateLimit", "Retry-After"}

// corsFor lets the browser origins of ALLOWED_ORIGINS call the REST API.
// Credentials travel in the Authorization or X-API-Key header, never in
// cookies, so Access-Control-Allow-Credentials is not sent, and the allowed
// origin is always echoed, never "*". A disallowed origin gets no CORS
// headers and its request is otherwise served unchanged: the browser, not
// the server, withholds the answer.
// Browsers cache the preflight answer for maxAge (Chromium caps it at two
// hours).
func corsFor(allowedOrigins []string, maxAge time.Duration) func(http.Handler) http.Handler {
	return cors.Handler(cors.Options{
		AllowOriginFunc: func(_ *http.Request, from string) bool { return origin.Allowed(from, allowedOrigins) },
		AllowedMethods:  []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete},
		AllowedHeaders:  []string{"Authorization", "Content-Type", "X-API-Key", "X-Makima-Api-Key"},
		ExposedHeaders:  exposedHeaders,
		MaxAge:          int(maxAge / time.Second),
	})
}
