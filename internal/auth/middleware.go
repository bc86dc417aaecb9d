package auth

import (
	"net/http"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// ErrorWriter answers a request that failed authentication.
type ErrorWriter func(w http.ResponseWriter, r *http.Request, err error)

// Middleware resolves the request's credentials and puts the principal in
// the context. A request without credentials passes on anonymous (routes
// that need a principal add Require); invalid credentials are refused here,
// on every route, so a mistyped key is never treated as no key.
func (a *Authenticator) Middleware(fail ErrorWriter) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := a.Authenticate(r)
			if err != nil {
				fail(w, r, err)
				return
			}
			if p != nil {
				r = r.WithContext(NewContext(r.Context(), p))
			}
			next.ServeHTTP(w, r)
		})
	}
}

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

// RequireScope refuses principals that lack scope with INSUFFICIENT_SCOPE
// (dashboard users hold every scope).
func RequireScope(scope keyhub.Scopes, fail ErrorWriter) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := FromContext(r.Context())
			switch {
			case p == nil:
				fail(w, r, errMissing)
			case !p.Scopes.Has(scope):
				fail(w, r, keyhub.Errorf(keyhub.CodeInsufficientScope, "this API key lacks the %s scope", scope))
			default:
				next.ServeHTTP(w, r)
			}
		})
	}
}
