package httpapi

import (
	"net/http"

	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/clientip"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/ratelimit"
)

// refuseBlockedClients answers 429 at once to a request carrying
// credentials from an address over its failed-authentication limit, before
// the credential is looked at: guessing then costs no database query. The
// check is in memory only (no Redis round trip on the hot path).
func (s *server) refuseBlockedClients(next http.Handler) http.Handler {
	limits := s.deps.RateLimits
	if limits == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth.HasCredentials(r.Header) {
			if d, blocked := limits.AuthBlocked(clientip.Of(r, s.trustedProxies)); blocked {
				writeRateLimited(w, r, d, ratelimit.AuthFailureMessage)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// countAuthFailures wraps the auth middleware's error writer: every failed
// authentication spends from the client address's bucket, and once it is
// empty the answer is 429 instead of 401.
func (s *server) countAuthFailures(fail auth.ErrorWriter) auth.ErrorWriter {
	limits := s.deps.RateLimits
	if limits == nil {
		return fail
	}
	return func(w http.ResponseWriter, r *http.Request, err error) {
		if ratelimit.IsAuthFailure(err) {
			if d := limits.AuthFailure(r.Context(), clientip.Of(r, s.trustedProxies)); !d.Allowed {
				writeRateLimited(w, r, d, ratelimit.AuthFailureMessage)
				return
			}
		}
		fail(w, r, err)
	}
}

// limitPrincipals spends one request from the bucket of the request's API
// key or user session and says so in the RateLimit headers of every
// authenticated response; over the limit it answers 429.
func (s *server) limitPrincipals(next http.Handler) http.Handler {
	limits := s.deps.RateLimits
	if limits == nil {
		return next
	}
	policies := map[string][]string{} // built once: the header value per tier
	for _, tier := range []keyhub.Tier{keyhub.TierFree, keyhub.TierPro, keyhub.TierTeam, keyhub.TierEnterprise} {
		policies[string(tier)] = []string{ratelimit.PolicyHeader(string(tier), limits.TierLimit(tier))}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := auth.FromContext(r.Context())
		if p == nil {
			next.ServeHTTP(w, r)
			return
		}
		// A Redis outage fails open here (d.Allowed; the limiter logs and
		// counts it).
		d := limits.Principal(r.Context(), p)
		if !d.Allowed {
			writeRateLimited(w, r, d, "too many requests for this "+principalNoun(p))
			return
		}
		h := w.Header()
		if v, ok := policies[d.Policy]; ok {
			h[ratelimit.HeaderKeyPolicy] = v // never modified downstream: shared safely
		} else {
			h.Set(ratelimit.HeaderPolicy, ratelimit.PolicyHeader(d.Policy, d.Limit))
		}
		if d.Err == nil { // without Redis's answer, nothing is known to remain
			h[ratelimit.HeaderKeyRateLimit] = []string{d.RateLimitHeader()}
		}
		next.ServeHTTP(w, r)
	})
}

func principalNoun(p *keyhub.Principal) string {
	if p.IsKey() {
		return "API key"
	}
	return "user"
}

// writeRateLimited answers 429 RATE_LIMITED with Retry-After and the
// RateLimit headers of the policy that refused.
func writeRateLimited(w http.ResponseWriter, r *http.Request, d ratelimit.Decision, why string) {
	ratelimit.SetRefusalHeaders(w.Header(), d)
	httpjson.Error(w, r, ratelimit.RefusalError(d, why))
}
