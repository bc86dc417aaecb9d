package httpapi

import (
	"net/http"

	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// limitRefreshes spends one refresh of the acting key lineage's refresh
// budget before a refresh runs (after the gate admitted the request and
// spent its request bucket); over it the answer is 429 with the budget's
// Retry-After and RateLimit headers.
func (s *server) limitRefreshes(next http.Handler) http.Handler {
	limits := s.deps.RateLimits
	if limits == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := auth.FromContext(r.Context()); p != nil {
			if d := limits.Refresh(r.Context(), p); !d.Allowed {
				auth.WriteError(w, r, auth.Refuse(d, "too many key refreshes by this API key"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// allowCreation spends one creation of the owner's key-creation budget
// before a create reaches the store, whatever the store then says (a
// create refused at the tier's key limit, or as a conflict, counts:
// probing costs the same as succeeding), but after the request was read
// and validated, so a mistyped form costs nothing. Over the budget it
// answers 429 with the budget's Retry-After and RateLimit headers and
// reports false.
func (s *server) allowCreation(w http.ResponseWriter, r *http.Request, p *keyhub.Principal) bool {
	if s.deps.RateLimits == nil {
		return true
	}
	if d := s.deps.RateLimits.Create(r.Context(), p); !d.Allowed {
		auth.WriteError(w, r, auth.Refuse(d, "too many keys created by this account"))
		return false
	}
	return true
}
