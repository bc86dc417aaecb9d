package auth_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// The guards that routes stack after the extractor chain.
func TestGuards(t *testing.T) {
	user := &keyhub.Principal{Method: keyhub.AuthJWT, Scopes: keyhub.BuiltinScopes}
	readKey := &keyhub.Principal{Method: keyhub.AuthAPIKey, Scopes: keyhub.ScopeKeysRead}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	guards := map[string]func(http.Handler) http.Handler{
		"require":      auth.Require(httpjson.Error),
		"user session": auth.RequireMethod(keyhub.AuthJWT, httpjson.Error),
		"keys:write":   auth.NewGate(auth.New(auth.Config{}), nil, nil, nil).RequireScope(keyhub.ScopeKeysWrite),
	}
	cases := []struct {
		guard  string
		p      *keyhub.Principal
		status int
	}{
		{"require", nil, 401},
		{"require", readKey, 204},
		{"user session", nil, 401},
		{"user session", readKey, 403},
		{"user session", user, 204},
		{"keys:write", nil, 401},
		{"keys:write", readKey, 403},
		{"keys:write", user, 204},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tc.p != nil {
			r = r.WithContext(auth.NewContext(r.Context(), tc.p))
		}
		w := httptest.NewRecorder()
		guards[tc.guard](ok).ServeHTTP(w, r)
		if w.Code != tc.status {
			t.Errorf("%s with %+v: got %d, want %d (%s)", tc.guard, tc.p, w.Code, tc.status, w.Body)
		}
	}
}
