package httpapi

import (
	"net/http"

	"github.com/keyhub/keyhub/internal/auth"
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
