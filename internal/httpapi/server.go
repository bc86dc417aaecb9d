// Package httpapi is keyhub's REST API: NewServer builds the whole HTTP
// handler; routes.go lists every route on one screen.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/clientip"
	"github.com/keyhub/keyhub/internal/gateway"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/metrics"
	"github.com/keyhub/keyhub/internal/operator"
	"github.com/keyhub/keyhub/internal/ratelimit"
)

// Deps is what the API needs.
type Deps struct {
	Keys keyhub.KeyService
	// Policies holds the owners' policies (GET and PATCH /v1/owner/policy).
	Policies keyhub.OwnerPolicyService
	// Usage reads the hourly request counts of keys.
	Usage keyhub.UsageReader
	// LeakSignatures checks GitHub's signature of a leak report and Leaks
	// records the leaked keys (POST /v1/leaks/github); the route exists
	// only when both are set.
	LeakSignatures LeakSignatures
	Leaks          keyhub.LeakRecorder
	// Gate admits every request that carries a credential: the one
	// admission step shared with the WebSocket upgrade and the gateway.
	Gate           *auth.Gate
	Log            *slog.Logger
	TrustedProxies []netip.Prefix
	// Ready reports whether the service can serve (the database answers).
	Ready func(ctx context.Context) error
	// DevJWKS serves the dev issuer's keys; nil outside dev mode.
	DevJWKS http.Handler
	// DevTokens mints dev-mode access tokens for POST /dev/token; nil
	// outside dev mode, where the route does not exist.
	DevTokens func(email string, ttl time.Duration) (string, error)
	// AllowedOrigins are the browser origins allowed to call the API
	// (CORS), as ALLOWED_ORIGINS lists them.
	AllowedOrigins []string
	// CORSMaxAge is how long browsers may cache a preflight answer.
	CORSMaxAge time.Duration
	// RequestTimeout bounds reading and answering one request, until a
	// WebSocket upgrade (default 30s).
	RequestTimeout time.Duration
	// KeyMinLifetime is the shortest lifetime a new key may be given
	// (KEY_MIN_LIFETIME, default 1 minute).
	KeyMinLifetime time.Duration
	// Metrics observes every request (route pattern, method, status); may
	// be nil.
	Metrics *metrics.Metrics
	// Dashboard serves the web dashboard's files under /dashboard/; nil
	// leaves / and /dashboard/ unrouted.
	Dashboard http.Handler
	// WebSocket serves /v1/ws and its companions; nil disables them.
	WebSocket WebSocketRoutes
	OpenAPI   []byte
	// Scopes names the scopes keys may carry (keyhub's and PRODUCT_SCOPES);
	// nil knows keyhub's own only.
	Scopes *keyhub.ScopeCatalog
	// Operators tells operator credentials (POST /v1/keys/verify) from
	// tenants'; nil accepts none.
	Operators *operator.Checker
	// IdentityJWKS serves the public key of the identities the gateway
	// sends upstream (GET /.well-known/jwks.json); nil leaves it unrouted.
	IdentityJWKS http.Handler
	// RateLimits tells /v1/me the request rate this server enforces; nil
	// when rate limiting is off (the Gate spends the buckets).
	RateLimits *ratelimit.Limits
	// Webhooks manages owners' webhooks (dashboard sessions only); nil
	// leaves /v1/webhooks unrouted.
	Webhooks keyhub.WebhookService
	// Gateway proxies GATEWAY_ROUTES to the products behind keyhub; nil
	// (or no routes) mounts none.
	Gateway *gateway.Gateway
}

// NewServer returns the complete HTTP handler.
func NewServer(d Deps) http.Handler {
	if d.KeyMinLifetime <= 0 {
		d.KeyMinLifetime = time.Minute
	}
	if d.RequestTimeout <= 0 {
		d.RequestTimeout = 30 * time.Second
	}
	return routes(d)
}

// requestMeta is what the audit trail records of a request.
func (s *server) requestMeta(r *http.Request) keyhub.RequestMeta {
	return keyhub.RequestMeta{IP: clientip.Of(r, s.trustedProxies), UserAgent: r.UserAgent()}
}
