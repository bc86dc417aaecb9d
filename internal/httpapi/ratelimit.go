package httpapi

import (
	"net/http"
	"strconv"

	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/clientip"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/ratelimit"
)

// Rate-limit headers follow draft-ietf-httpapi-ratelimit-headers-10
// (structured fields): RateLimit-Policy names the policy with its quota q
// and window w in seconds; RateLimit gives what remains (r) and the
// seconds until the quota is whole again (t). Retry-After (RFC 9110)
// accompanies every 429.
const (
	headerPolicy     = "RateLimit-Policy"
	headerRateLimit  = "RateLimit"
	headerRetryAfter = "Retry-After"
)

// authFailureCodes are the answers that count as a failed authentication:
// a credential was presented and it was wrong.
var authFailureCodes = map[keyhub.Code]bool{
	keyhub.CodeInvalidToken:   true,
	keyhub.CodeExpiredToken:   true,
	keyhub.CodeNotUserSession: true,
	keyhub.CodeInvalidAPIKey:  true,
	keyhub.CodeUnknownAPIKey:  true,
	keyhub.CodeKeyRevoked:     true,
	keyhub.CodeKeyExpired:     true,
	keyhub.CodeInvalidTicket:  true,
}

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
				writeRateLimited(w, r, d, "too many failed authentications from this address")
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
		if authFailureCodes[keyhub.ErrorCode(err)] {
			if d := limits.AuthFailure(r.Context(), clientip.Of(r, s.trustedProxies)); !d.Allowed {
				writeRateLimited(w, r, d, "too many failed authentications from this address")
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
	policies := map[string]string{} // built once: the header value per tier
	for _, tier := range []keyhub.Tier{keyhub.TierFree, keyhub.TierPro, keyhub.TierTeam, keyhub.TierEnterprise} {
		policies[string(tier)] = policyHeader(string(tier), limits.TierLimit(tier))
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
			h[headerPolicy] = []string{v}
		} else {
			h[headerPolicy] = []string{policyHeader(d.Policy, d.Limit)}
		}
		h[headerRateLimit] = []string{rateLimitHeader(d)}
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
	h := w.Header()
	retry := d.RetryAfterSeconds()
	h.Set(headerRetryAfter, strconv.FormatInt(retry, 10))
	h.Set(headerPolicy, policyHeader(d.Policy, d.Limit))
	h.Set(headerRateLimit, rateLimitHeader(d))
	httpjson.Error(w, r, keyhub.Errorf(keyhub.CodeRateLimited, "%s; retry in %d s", why, retry))
}

// policyHeader is `"<name>";q=<burst>;w=<seconds>`.
func policyHeader(name string, l ratelimit.Limit) string {
	b := make([]byte, 0, 48)
	b = strconv.AppendQuote(b, name)
	b = append(b, ";q="...)
	b = strconv.AppendInt(b, int64(l.Burst), 10)
	b = append(b, ";w="...)
	b = strconv.AppendInt(b, int64((l.Window()+999_999_999)/1_000_000_000), 10)
	return string(b)
}

// rateLimitHeader is `"<name>";r=<remaining>;t=<seconds>`.
func rateLimitHeader(d ratelimit.Decision) string {
	var buf [64]byte
	b := strconv.AppendQuote(buf[:0], d.Policy)
	b = append(b, ";r="...)
	b = strconv.AppendInt(b, int64(d.Remaining), 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, d.ResetSeconds(), 10)
	return string(b)
}
