package gateway_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/api/identity"
	"github.com/keyhub/keyhub/internal/apitest"
)

// identityUpstream is a product as the README tells one to be written: an
// httptest server whose handler is wrapped by identity.Middleware, recording
// the principal each request it lets through carries.
type identityUpstream struct {
	*httptest.Server
	handler atomic.Pointer[http.Handler] // set once keyhub (its JWKS) runs
	mu      sync.Mutex
	seen    []identity.Principal
	tokens  []string
}

func newIdentityUpstream(t *testing.T) *identityUpstream {
	t.Helper()
	u := &identityUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := u.handler.Load()
		if h == nil {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		(*h).ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

// protect puts mw in front of the recording handler.
func (u *identityUpstream) protect(mw func(http.Handler) http.Handler) {
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := identity.FromContext(r.Context())
		if !ok {
			http.Error(w, "no principal in the context", http.StatusInternalServerError)
			return
		}
		u.mu.Lock()
		u.seen = append(u.seen, *p)
		u.tokens = append(u.tokens, r.Header.Get(identity.Header))
		u.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	u.handler.Store(&h)
}

// admitted is how many requests the middleware let through so far, and
// the last one's principal and token.
func (u *identityUpstream) admitted() (int, identity.Principal, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		return 0, identity.Principal{}, ""
	}
	return len(u.seen), u.seen[len(u.seen)-1], u.tokens[len(u.tokens)-1]
}

// gatewaySigningKey writes a fresh P-256 key where GATEWAY_SIGNING_KEY
// can name it, so the test can sign with keyhub's own key.
func gatewaySigningKey(t *testing.T) (*ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gateway.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, path
}

// TestMiddlewareBehindTheGateway: an upstream wrapped by
// identity.Middleware(jwksURL, audience, WithIssuer) behind a real keyhub
// route sees the caller keyhub admitted (sub, owner_id, key_id, scopes,
// tier), and refuses with 401 INVALID_IDENTITY, without calling its
// handler, a request that carries no identity, a forged one (another key
// under keyhub's kid, or keyhub's token altered), or one signed by keyhub's
// own key but expired, issued by another issuer or for another audience.
func TestMiddlewareBehindTheGateway(t *testing.T) {
	t.Parallel()
	signingKey, keyPath := gatewaySigningKey(t)
	upstream := newIdentityUpstream(t)
	env := apitest.New(t, map[string]string{
		"PRODUCT_SCOPES":      "app:read,app:write",
		"GATEWAY_ROUTES":      "/app/ " + upstream.URL + " scope=app:write read_scope=app:read",
		"GATEWAY_SIGNING_KEY": keyPath,
	})
	mw, err := identity.Middleware(env.URL+identity.JWKSPath, identity.DefaultAudience, identity.WithIssuer(env.Config.PublicURL))
	if err != nil {
		t.Fatal(err)
	}
	upstream.protect(mw)

	session := env.Token(t, uniqueEmail("mw"))
	var me api.Me
	env.Get(t, "/v1/me", session).Want(t, http.StatusOK, "").JSON(t, &me)
	var created api.CreatedKey
	env.Post(t, "/v1/keys", session, map[string]any{"name": "product", "scopes": []string{"app:read"}}).
		Want(t, http.StatusCreated, "").JSON(t, &created)

	// Through keyhub with the key: the principal is the key's, and a
	// Keyhub-Identity the client sends itself never reaches the upstream.
	env.Do(t, apitest.Request{Method: http.MethodGet, Path: "/app/tasks", Headers: map[string]string{
		"X-API-Key": created.Secret, identity.Header: "forged-by-the-client",
	}}).Want(t, http.StatusOK, "")
	n, p, token := upstream.admitted()
	if n != 1 {
		t.Fatalf("the upstream admitted %d requests, want 1", n)
	}
	want := identity.Principal{
		UserID: me.UserID, OwnerID: me.OwnerID, KeyID: created.ID,
		Scopes: []string{"app:read"}, Tier: me.Tier, AuthMethod: identity.MethodAPIKey,
	}
	if p.UserID != want.UserID || p.OwnerID != want.OwnerID || p.KeyID != want.KeyID ||
		!slices.Equal(p.Scopes, want.Scopes) || p.Tier != want.Tier || p.AuthMethod != want.AuthMethod {
		t.Fatalf("the upstream saw %+v, want %+v", p, want)
	}
	if me.Tier != "free" || p.ExpiresAt.Sub(p.IssuedAt) > time.Minute || p.TokenID == "" {
		t.Fatalf("tier %q, lifetime %s, jti %q", me.Tier, p.ExpiresAt.Sub(p.IssuedAt), p.TokenID)
	}

	// A user session: no key_id, the session's method, every scope.
	env.Get(t, "/app/tasks", session).Want(t, http.StatusOK, "")
	if n, p, _ = upstream.admitted(); n != 2 || p.UserID != me.UserID || p.KeyID != uuid.Nil ||
		p.AuthMethod != identity.MethodJWT || !p.HasScope("app:write") {
		t.Fatalf("a session's request: %d admitted, principal %+v", n, p)
	}

	// keyhub refuses what the route does not allow; the upstream sees none.
	env.Get(t, "/app/tasks", "").Want(t, http.StatusUnauthorized, "")
	env.Post(t, "/app/tasks", created.Secret, nil).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")

	// Straight to the upstream, around keyhub.
	issued, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	claims := issued.Claims.(jwt.MapClaims)
	sign := func(key *ecdsa.PrivateKey, change func(jwt.MapClaims)) string {
		c := jwt.MapClaims{}
		for k, v := range claims {
			c[k] = v
		}
		c["jti"] = uuid.NewString() // never a token the middleware verified before
		change(c)
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
		tok.Header["kid"], tok.Header["typ"] = issued.Header["kid"], issued.Header["typ"]
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	// keyhub's signature of its token over other claims (app:write added).
	altered := strings.Split(sign(signingKey, func(c jwt.MapClaims) { c["scopes"] = []string{"app:read", "app:write"} }), ".")
	tampered := altered[0] + "." + altered[1] + "." + strings.Split(token, ".")[2]
	direct := func(tok string) *http.Response {
		req, err := http.NewRequest(http.MethodGet, upstream.URL+"/app/tasks", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			req.Header.Set(identity.Header, tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// keyhub's own token, re-signed with keyhub's key: the forgeries
	// below differ from it in one thing each.
	if resp := direct(sign(signingKey, func(jwt.MapClaims) {})); resp.StatusCode != http.StatusOK {
		t.Fatalf("a token signed with keyhub's key as keyhub signs: %d", resp.StatusCode)
	}
	admittedBefore, _, _ := upstream.admitted()
	for name, tok := range map[string]string{
		"no identity":             "",
		"not a JWT":               "forged-by-the-client",
		"another key, keyhub kid": sign(other, func(jwt.MapClaims) {}),
		"altered claims":          tampered,
		"expired": sign(signingKey, func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-2*time.Minute).Unix(), now.Add(-time.Minute).Unix()
		}),
		"another issuer":   sign(signingKey, func(c jwt.MapClaims) { c["iss"] = "https://staging.keyhub.example" }),
		"another audience": sign(signingKey, func(c jwt.MapClaims) { c["aud"] = []string{"another-product"} }),
	} {
		resp := direct(tok)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, resp.StatusCode)
		}
	}
	if n, _, _ := upstream.admitted(); n != admittedBefore {
		t.Fatalf("the upstream's handler ran for %d refused requests", n-admittedBefore)
	}
	// The refusal is keyhub's error shape, with the middleware's code.
	req, _ := http.NewRequest(http.MethodGet, upstream.URL+"/app/tasks", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var refusal struct {
		Error struct{ Code, Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&refusal); err != nil || refusal.Error.Code != identity.CodeInvalidIdentity {
		t.Fatalf("refusal %+v (%v), want code %s", refusal, err, identity.CodeInvalidIdentity)
	}
}
