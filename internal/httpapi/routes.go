package httpapi

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/keyhub/keyhub/api/identity"
	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/gateway"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// server holds what handlers share.
type server struct {
	deps           Deps
	trustedProxies []netip.Prefix
}

// authzMethods are the methods forward auth answers: all but CONNECT and
// TRACE, which no product route serves through a gateway.
var authzMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}

// routes is the whole API surface.
func routes(d Deps) http.Handler {
	s := &server{deps: d, trustedProxies: d.TrustedProxies}
	fail := auth.ErrorWriter(auth.WriteError)
	scope := d.Gate.RequireScope

	r := chi.NewRouter()
	r.Use(limitRequestTime(d.RequestTimeout), logRequests(d.Log), d.Metrics.Middleware, recoverPanics, corsFor(d.AllowedOrigins, d.CORSMaxAge))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		httpjson.Error(w, r, keyhub.Errorf(keyhub.CodeNotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		// RFC 9110 15.5.6: a 405 lists what the path allows. chi knows
		// that only for its own default handler, so ask the router.
		w.Header()["Allow"] = []string{strings.Join(allowedMethods(r, req.URL.Path), ", ")}
		httpjson.Error(w, req, keyhub.Errorf(keyhub.CodeMethodNotAllowed, "%s is not allowed on %s", req.Method, req.URL.Path))
	})

	// Public.
	r.Get("/healthz", s.handleHealthz)
	r.Get("/readyz", s.handleReadyz)
	r.Get("/openapi.yaml", s.handleOpenAPI)
	if d.IdentityJWKS != nil {
		r.Method(http.MethodGet, identity.JWKSPath, d.IdentityJWKS)
	}
	if d.DevJWKS != nil {
		r.Method(http.MethodGet, "/auth/v1/.well-known/jwks.json", d.DevJWKS)
	}
	if d.DevTokens != nil {
		r.Post("/dev/token", s.handleDevToken)
	}
	if d.Dashboard != nil {
		toDashboard := http.RedirectHandler("/dashboard/", http.StatusFound)
		r.Method(http.MethodGet, "/", toDashboard)
		r.Method(http.MethodGet, "/dashboard", toDashboard)
		r.Method(http.MethodGet, "/dashboard/", d.Dashboard)
		r.Method(http.MethodGet, "/dashboard/config.json", d.Dashboard)
		r.Method(http.MethodGet, "/dashboard/{file}", d.Dashboard)
	}

	// The WebSocket upgrades admit their connections themselves, through
	// the same gate, since their credential may come after the upgrade (a
	// ticket, a first message).
	if ws := d.WebSocket; ws != nil {
		r.Method(http.MethodGet, "/v1/ws", ws.Upgrade())
		r.Method(http.MethodGet, "/ws/daemon", ws.Upgrade())
		r.Method(http.MethodGet, "/ws", ws.Upgrade())
	}

	// The products behind keyhub (GATEWAY_ROUTES). Each route admits its
	// requests itself (credential, rate limit, its own scope per method)
	// and forwards them without their credentials; a route may never
	// shadow keyhub's own paths (gateway.Reserved).
	for _, m := range d.Gateway.Mounts() {
		r.Handle(m.Pattern, m.Handler)
	}
	// Forward auth for the gateways people already run (nginx
	// auth_request, Caddy forward_auth, Traefik forwardAuth, Envoy
	// ext_authz): admitted by the same gate, with every method a request
	// to a product may have, since some gateways send the original one
	// (Envoy also appends the original path).
	if fa := d.Gateway.ForwardAuth(); fa != nil {
		for _, method := range authzMethods {
			r.Method(method, gateway.AuthzPath, fa)
			r.Method(method, gateway.AuthzPath+"/*", fa)
		}
	}

	// Operators verify their customers' keys with their own credential,
	// which the tenants' gate would refuse; the key asked about passes the
	// same gate inside the handler.
	r.Post("/v1/keys/verify", s.handleKeyVerify)

	// GitHub's secret scanning reports carry GitHub's signature, not a
	// tenant's credential.
	if d.LeakSignatures != nil && d.Leaks != nil {
		r.Post("/v1/leaks/github", s.handleGitHubLeaks)
	}

	// Everything else passes the gate: invalid credentials are refused
	// even where a principal is optional.
	r.Group(func(r chi.Router) {
		r.Use(d.Gate.Middleware)

		r.Route("/v1", func(r chi.Router) {
			r.With(auth.Require(fail)).Get("/me", s.handleMe)

			r.With(scope(keyhub.ScopeKeysRead)).Get("/keys", s.handleKeyList)
			r.With(scope(keyhub.ScopeKeysWrite)).Post("/keys", s.handleKeyCreate)
			r.With(scope(keyhub.ScopeKeysRead)).Get("/keys/{id}", s.handleKeyGet)
			r.With(scope(keyhub.ScopeKeysWrite)).Delete("/keys/{id}", s.handleKeyRevoke)
			r.With(scope(keyhub.ScopeKeysWrite), s.limitRefreshes).Post("/keys/{id}/refresh", s.handleKeyRefresh)
			r.With(scope(keyhub.ScopeKeysWrite)).Patch("/keys/{id}", s.handleKeyUpdate)
			r.With(scope(keyhub.ScopeKeysWrite)).Post("/keys/{id}/disable", s.handleKeyDisabled(true))
			r.With(scope(keyhub.ScopeKeysWrite)).Post("/keys/{id}/enable", s.handleKeyDisabled(false))
			r.With(scope(keyhub.ScopeEventsRead)).Get("/keys/{id}/events", s.handleKeyEvents)
			r.With(scope(keyhub.ScopeKeysRead)).Get("/keys/{id}/usage", s.handleKeyUsage)
			r.With(scope(keyhub.ScopeEventsRead)).Get("/events", s.handleEventList)

			// The owner's rules are the tenant's: a dashboard user's, never a key's.
			userOnly := auth.RequireMethod(keyhub.AuthJWT, fail)
			r.With(userOnly, scope(keyhub.ScopeKeysRead)).Get("/owner/policy", s.handlePolicyGet)
			r.With(userOnly, scope(keyhub.ScopeKeysWrite)).Patch("/owner/policy", s.handlePolicyUpdate)

			// Webhooks are account management: a dashboard session only,
			// never a key (whoever holds a leaked key must not be able to
			// point the owner's audit trail at an endpoint of their own).
			if d.Webhooks != nil {
				r.Route("/webhooks", func(r chi.Router) {
					r.Use(userOnly)
					r.With(scope(keyhub.ScopeEventsRead)).Get("/", s.handleWebhookList)
					r.With(scope(keyhub.ScopeKeysWrite)).Post("/", s.handleWebhookCreate)
					r.With(scope(keyhub.ScopeKeysWrite)).Delete("/{id}", s.handleWebhookDelete)
					r.With(scope(keyhub.ScopeEventsRead)).Get("/{id}/deliveries", s.handleWebhookDeliveries)
				})
			}

			if d.WebSocket != nil {
				r.With(scope(keyhub.ScopeWSConnect)).Post("/ws/tickets", s.handleTicketCreate(http.StatusCreated))
				r.With(scope(keyhub.ScopeWSConnect)).Get("/ws/connections", s.handleConnectionList)
				r.With(scope(keyhub.ScopeWSConnect)).Delete("/ws/connections/{id}", s.handleConnectionClose)
			}
		})

		// The seed service's single-key API, as adapters over the same code.
		r.Route("/api/v1/auth/api-keys", func(r chi.Router) {
			r.With(scope(keyhub.ScopeKeysRead)).Get("/", s.handleSeedGet)
			r.With(scope(keyhub.ScopeKeysWrite)).Post("/", s.handleSeedCreate)
			r.With(scope(keyhub.ScopeKeysWrite)).Delete("/", s.handleSeedRevoke)
			r.With(scope(keyhub.ScopeKeysWrite), s.limitRefreshes).Post("/refresh", s.handleSeedRefresh)
		})
		if d.WebSocket != nil {
			// The seed ws-ticket service: a ticket for X-API-Key, redeemed at /ws.
			r.With(scope(keyhub.ScopeWSConnect)).Post("/api/ws-ticket", s.handleTicketCreate(http.StatusOK))
		}
	})
	return r
}

// routeMethods are the methods a 405's Allow header may name.
var routeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}

// allowedMethods are the methods routes serves on path.
func allowedMethods(routes chi.Routes, path string) []string {
	var allow []string
	for _, method := range routeMethods {
		if routes.Match(chi.NewRouteContext(), method, path) {
			allow = append(allow, method)
		}
	}
	return allow
}
