package httpapi

import (
	"net/http"

	"github.com/go-chi/cors"

	"github.com/keyhub/keyhub/internal/origin"
)

// corsMaxAge is how long (seconds) a browser may cache a preflight answer.
// Chromium caps it at 7200; ten minutes keeps a changed ALLOWED_ORIGINS
// from lingering in browsers for long.
const corsMaxAge = 600

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
func corsFor(allowedOrigins []string) func(http.Handler) http.Handler {
	return cors.Handler(cors.Options{
		AllowOriginFunc: func(_ *http.Request, from string) bool { return origin.Allowed(from, allowedOrigins) },
		AllowedMethods:  []string{http.MethodGet, http.MethodPost, http.MethodDelete},
		AllowedHeaders:  []string{"Authorization", "Content-Type", "X-API-Key", "X-Makima-Api-Key"},
		ExposedHeaders:  exposedHeaders,
		MaxAge:          corsMaxAge,
	})
}
