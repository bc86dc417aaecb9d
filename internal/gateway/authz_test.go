package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/keyhub/keyhub/api/identity"
	"github.com/keyhub/keyhub/internal/apitest"
)

// verifier checks identities against env's JWKS for audience.
func verifier(t *testing.T, env *apitest.Env, audience string) *identity.Verifier {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := identity.New(ctx, identity.Config{JWKSURL: env.URL + identity.JWKSPath, Audience: audience, Issuer: env.Config.PublicURL})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// noCredentialEchoed fails the test when any header or the body of an
// answer holds one of the secrets.
func noCredentialEchoed(t *testing.T, r apitest.Response, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		if strings.Contains(string(r.Body), secret) {
			t.Errorf("the answer's body holds a credential")
		}
		for name, values := range r.Header {
			for _, v := range values {
				if strings.Contains(v, secret) {
					t.Errorf("the answer's %s holds a credential", name)
				}
			}
		}
	}
}

// TestAuthzAllows: a key holding the scope gets 200 with a verifiable
// identity, the convenience headers and the RateLimit headers, and nothing
// of its credential back; a user session gets no Keyhub-Key-Id; any
// method is accepted, and audience= names the identity's audience.
func TestAuthzAllows(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"PRODUCT_SCOPES": "app:read,app:write"})
	key, jwt := newKey(t, env, []string{"app:read"})
	ids := verifier(t, env, identity.DefaultAudience)
	ctx := context.Background()

	r := env.Do(t, apitest.Request{Method: http.MethodGet, Path: "/v1/authz?scope=app:read", Headers: map[string]string{
		"X-API-Key": key, "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/app/tasks?x=1",
		// A client's own Keyhub- headers are not echoed as if they were keyhub's.
		"Keyhub-User-Id": "forged",
	}}).Want(t, http.StatusOK, "")
	noCredentialEchoed(t, r, key, jwt)
	if len(r.Body) != 0 {
		t.Errorf("a 200 has a body: %q", r.Body)
	}
	p, err := ids.Verify(ctx, r.Header.Get(identity.Header))
	if err != nil {
		t.Fatalf("the identity does not verify: %v", err)
	}
	if p.AuthMethod != identity.MethodAPIKey || p.KeyID.String() != r.Header.Get(identity.HeaderKeyID) ||
		p.UserID.String() != r.Header.Get(identity.HeaderUserID) || p.OwnerID.String() != r.Header.Get(identity.HeaderOwnerID) ||
		r.Header.Get(identity.HeaderScopes) != "app:read" || p.Tier != r.Header.Get(identity.HeaderTier) || p.Tier == "" {
		t.Errorf("identity %+v, headers %v", p, r.Header)
	}
	if r.Header.Get("RateLimit") == "" || r.Header.Get("RateLimit-Policy") == "" {
		t.Errorf("no RateLimit headers: %v", r.Header)
	}

	// A user session, any method (Envoy forwards the original one), and
	// the original path after /v1/authz/, whose query is the client's.
	r = env.Do(t, apitest.Request{Method: http.MethodDelete, Path: "/v1/authz/app/tasks/1?refuse_as=nonsense&scope=nope", Cred: jwt}).Want(t, http.StatusOK, "")
	noCredentialEchoed(t, r, jwt)
	if p, err := ids.Verify(ctx, r.Header.Get(identity.Header)); err != nil || p.AuthMethod != identity.MethodJWT {
		t.Fatalf("user identity %+v: %v", p, err)
	}
	if _, has := r.Header[identity.HeaderKeyID]; has {
		t.Errorf("a user session got Keyhub-Key-Id")
	}

	r = env.Do(t, apitest.Request{Method: http.MethodPost, Path: "/v1/authz?audience=tasks", Cred: key}).Want(t, http.StatusOK, "")
	if _, err := verifier(t, env, "tasks").Verify(ctx, r.Header.Get(identity.Header)); err != nil {
		t.Errorf("audience=tasks: %v", err)
	}
}

// TestAuthzRefuses: every refusal is keyhub's JSON error with its code
// (also in Keyhub-Error), WWW-Authenticate on 401 and Retry-After on 429;
// the scope follows the original method (read_scope for GET, HEAD and
// OPTIONS) from Traefik's and Caddy's headers or nginx's; the query is the
// operator's and a mistake in it is a 400.
func TestAuthzRefuses(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"PRODUCT_SCOPES": "app:read,app:write"})
	reader, _ := newKey(t, env, []string{"app:read"})
	const rw = "/v1/authz?scope=app:write&read_scope=app:read"

	for _, tc := range []struct {
		name, path, cred string
		header           map[string]string
		status           int
		code             string
	}{
		{"no credential", "/v1/authz", "", nil, http.StatusUnauthorized, "MISSING_CREDENTIALS"},
		{"a bad key", "/v1/authz", "mk_not_a_real_key", nil, http.StatusUnauthorized, "INVALID_API_KEY"},
		{"lacks the scope", "/v1/authz?scope=app:write", reader, nil, http.StatusForbidden, "INSUFFICIENT_SCOPE"},
		{"a write (Traefik, Caddy)", rw, reader, map[string]string{"X-Forwarded-Method": "POST"}, http.StatusForbidden, "INSUFFICIENT_SCOPE"},
		{"a write (nginx)", rw, reader, map[string]string{"X-Original-Method": "put"}, http.StatusForbidden, "INSUFFICIENT_SCOPE"},
		{"a read (Traefik, Caddy)", rw, reader, map[string]string{"X-Forwarded-Method": "GET"}, http.StatusOK, ""},
		{"a read (nginx)", rw, reader, map[string]string{"X-Original-Method": "HEAD"}, http.StatusOK, ""},
		{"an unknown scope", "/v1/authz?scope=app:delete", reader, nil, http.StatusBadRequest, "INVALID_SCOPE"},
		{"an unknown parameter", "/v1/authz?scopes=app:write", reader, nil, http.StatusBadRequest, "VALIDATION_FAILED"},
		{"a repeated scope", "/v1/authz?scope=app:read&scope=app:write", reader, nil, http.StatusBadRequest, "VALIDATION_FAILED"},
		{"refuse_as is only 403", "/v1/authz?refuse_as=500", reader, nil, http.StatusBadRequest, "VALIDATION_FAILED"},
		{"refuse_as keeps a 403", "/v1/authz?scope=app:write&refuse_as=403", reader, nil, http.StatusForbidden, "INSUFFICIENT_SCOPE"},
		{"refuse_as keeps a 401", "/v1/authz?refuse_as=403", "mk_not_a_real_key", nil, http.StatusUnauthorized, "INVALID_API_KEY"},
	} {
		header := map[string]string{}
		for k, v := range tc.header {
			header[k] = v
		}
		if tc.cred != "" {
			header["X-API-Key"] = tc.cred
		}
		r := env.Do(t, apitest.Request{Method: http.MethodGet, Path: tc.path, Headers: header})
		if r.Status != tc.status || (tc.code != "" && r.ErrorCode() != tc.code) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.Status, r.Body, tc.status, tc.code)
			continue
		}
		noCredentialEchoed(t, r, reader)
		if tc.code != "" && r.Header.Get("Keyhub-Error") != tc.code {
			t.Errorf("%s: Keyhub-Error is %q", tc.name, r.Header.Get("Keyhub-Error"))
		}
		if (r.Status == http.StatusUnauthorized) != (r.Header.Get("WWW-Authenticate") != "") {
			t.Errorf("%s: %d with WWW-Authenticate %q", tc.name, r.Status, r.Header.Get("WWW-Authenticate"))
		}
		if r.Status != http.StatusOK && r.Header.Get(identity.Header) != "" {
			t.Errorf("%s: a refusal carries an identity", tc.name)
		}
	}
}

// TestAuthzRateLimit: forward auth spends the key's bucket exactly like
// REST (one bucket for both), answers 429 with Retry-After when it is
// empty, and with refuse_as=403 (nginx) a 403 naming the 429 in
// Keyhub-Status, with the same Retry-After.
func TestAuthzRateLimit(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"RATE_LIMIT_TIER_RPM": "free=3"})
	key, _ := newKey(t, env, nil)
	env.Get(t, "/v1/authz", key).Want(t, http.StatusOK, "")
	env.Get(t, "/v1/me", key).Want(t, http.StatusOK, "")
	r := env.Get(t, "/v1/authz", key).Want(t, http.StatusOK, "")
	if got := r.Header.Get("RateLimit"); !strings.Contains(got, "r=0") {
		t.Errorf("after 3 of 3 requests, RateLimit is %q", got)
	}

	r = env.Get(t, "/v1/authz", key).Want(t, http.StatusTooManyRequests, "RATE_LIMITED")
	if r.Header.Get("Retry-After") == "" || r.Header.Get("Keyhub-Status") != "" || r.Header.Get(identity.Header) != "" {
		t.Errorf("429 headers: %v", r.Header)
	}
	env.Get(t, "/v1/me", key).Want(t, http.StatusTooManyRequests, "RATE_LIMITED")

	r = env.Get(t, "/v1/authz?refuse_as=403", key).Want(t, http.StatusForbidden, "RATE_LIMITED")
	if r.Header.Get("Keyhub-Status") != "429" || r.Header.Get("Retry-After") == "" || r.Header.Get("Keyhub-Error") != "RATE_LIMITED" {
		t.Errorf("refuse_as=403 headers: %v", r.Header)
	}
}
