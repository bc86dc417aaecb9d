package gateway

import (
	"net/http"
	"net/netip"

	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/clientip"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/ratelimit"
)

// AuthAdmitter admits requests with the extractor chain and the rate-limit
// policy, in the order REST's middleware applies them: a blocked address
// is refused before its credential is read, a failed authentication spends
// the address's failure bucket, an admitted principal spends its own.
type AuthAdmitter struct {
	Auth *auth.Authenticator
	// Limits may be nil: no rate limits.
	Limits         *ratelimit.Limits
	TrustedProxies []netip.Prefix
}

var errMissing = keyhub.Errorf(keyhub.CodeMissingCredentials, "this route requires an Authorization: Bearer token or an X-API-Key header")

// rateLimited is a refusal by a rate limit, with the decision its headers
// come from.
type rateLimited struct {
	decision ratelimit.Decision
	err      error
}

func (e rateLimited) Error() string { return e.err.Error() }
func (e rateLimited) Unwrap() error { return e.err }

// Admit implements Admitter.
func (a AuthAdmitter) Admit(w http.ResponseWriter, r *http.Request) (*keyhub.Principal, error) {
	client := clientip.Of(r, a.TrustedProxies)
	if a.Limits != nil && auth.HasCredentials(r.Header) {
		if d, blocked := a.Limits.AuthBlocked(client); blocked {
			return nil, rateLimited{d, ratelimit.RefusalError(d, ratelimit.AuthFailureMessage)}
		}
	}
	p, err := a.Auth.Authenticate(r)
	if err == nil && p == nil {
		err = errMissing
	}
	if err != nil {
		if a.Limits != nil && ratelimit.IsAuthFailure(err) {
			if d := a.Limits.AuthFailure(r.Context(), client); !d.Allowed {
				return nil, rateLimited{d, ratelimit.RefusalError(d, ratelimit.AuthFailureMessage)}
			}
		}
		return nil, err
	}
	if a.Limits != nil {
		d := a.Limits.Principal(r.Context(), p)
		if !d.Allowed {
			return nil, rateLimited{d, ratelimit.RefusalError(d, "too many requests for this credential")}
		}
		h := w.Header()
		h.Set(ratelimit.HeaderPolicy, ratelimit.PolicyHeader(d.Policy, d.Limit))
		if d.Err == nil {
			h.Set(ratelimit.HeaderRateLimit, d.RateLimitHeader())
		}
	}
	return p, nil
}

// WriteError implements Admitter.
func (AuthAdmitter) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	if rl, ok := err.(rateLimited); ok {
		ratelimit.SetRefusalHeaders(w.Header(), rl.decision)
	}
	httpjson.Error(w, r, err)
}
