package auth

import (
	"net/http"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// ErrorWriter answers a request that failed authentication.
type ErrorWriter func(w http.ResponseWriter, r *http.Request, err error)

// Require refuses anonymous requests with MISSING_CREDENTIALS.
func Require(fail ErrorWriter) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if FromContext(r.Context()) == nil {
				fail(w, r, errMissing)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// RequireMethod admits only principals that authenticated the given way,
// e.g. dashboard users (keyhub.AuthJWT) for account management.
func RequireMethod(method keyhub.AuthMethod, fail ErrorWriter) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := FromContext(r.Context())
			switch {
			case p == nil:
				fail(w, r, errMissing)
			case p.Method != method:
				fail(w, r, keyhub.Errorf(keyhub.CodeUserSessionRequired, "this endpoint requires signing in with %s", method))
			default:
				next.ServeHTTP(w, r)
			}
		})
	}
}
