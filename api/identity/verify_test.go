package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api/identity"
	signer "github.com/keyhub/keyhub/internal/identity"
	"github.com/keyhub/keyhub/internal/keyhub"
)

const issuer = "https://keyhub.example.com"

type fixture struct {
	key    *ecdsa.PrivateKey
	signer *signer.Signer
	jwks   *httptest.Server
	now    atomic.Int64 // the verifier's and signer's clock, UnixNano
}

func (f *fixture) clock() time.Time { return time.Unix(0, f.now.Load()) }

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{}
	f.now.Store(time.Now().UnixNano())
	var err error
	if f.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	scopes, _ := keyhub.NewScopeCatalog([]string{"app:read"})
	if f.signer, err = signer.New(signer.Config{Key: f.key, Issuer: issuer, Scopes: scopes, Now: f.clock}); err != nil {
		t.Fatal(err)
	}
	f.jwks = httptest.NewServer(f.signer.JWKSHandler())
	t.Cleanup(f.jwks.Close)
	return f
}

func (f *fixture) verifier(t *testing.T, audience string) *identity.Verifier {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := identity.New(ctx, identity.Config{JWKSURL: f.jwks.URL, Audience: audience, Issuer: issuer, Now: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// upstream answers with the principal it sees, as JSON.
func upstream(v *identity.Verifier) http.Handler {
	return v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := identity.FromContext(r.Context())
		if !ok {
			http.Error(w, "no principal", http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(p)
	}))
}

func call(t *testing.T, h http.Handler, token string) (int, identity.Principal, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	if token != "" {
		req.Header.Set(identity.Header, token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var p identity.Principal
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
	}
	return rec.Code, p, rec.Body.String()
}

func TestMiddlewareAcceptsKeyhubsIdentity(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := upstream(f.verifier(t, identity.DefaultAudience))
	scopes, _ := keyhub.NewScopeCatalog([]string{"app:read"})
	held, _ := scopes.Parse([]string{"app:read", "keys:read"})
	p := &keyhub.Principal{UserID: uuid.New(), OwnerID: uuid.New(), KeyID: uuid.New(), Method: keyhub.AuthAPIKey, Tier: keyhub.TierTeam, Scopes: held}
	token, err := f.signer.Identity(p, "")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // verified, then from the cache
		code, got, body := call(t, h, token)
		if code != http.StatusOK {
			t.Fatalf("%d %s", code, body)
		}
		if got.UserID != p.UserID || got.OwnerID != p.OwnerID || got.KeyID != p.KeyID || got.Tier != "team" ||
			got.AuthMethod != identity.MethodAPIKey || !got.HasScope("app:read") || got.HasScope("app:write") || got.TokenID == "" {
			t.Fatalf("principal: %+v", got)
		}
	}

	user := &keyhub.Principal{UserID: uuid.New(), OwnerID: uuid.New(), Method: keyhub.AuthJWT, Tier: keyhub.TierFree, Scopes: scopes.All()}
	token, _ = f.signer.Identity(user, "")
	if code, got, body := call(t, h, token); code != http.StatusOK || got.KeyID != uuid.Nil || got.AuthMethod != identity.MethodJWT {
		t.Fatalf("user session: %d %s", code, body)
	}
}

func TestMiddlewareRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := upstream(f.verifier(t, identity.DefaultAudience))
	p := &keyhub.Principal{UserID: uuid.New(), OwnerID: uuid.New(), KeyID: uuid.New(), Method: keyhub.AuthAPIKey, Tier: keyhub.TierFree}
	good, _ := f.signer.Identity(p, "")
	otherAudience, _ := f.signer.Identity(p, "billing")

	// A token made by hand, signed with keyhub's key or another one.
	forge := func(key *ecdsa.PrivateKey, typ string, mutate func(*identity.Claims)) string {
		now := f.clock()
		c := identity.Claims{
			RegisteredClaims: jwt.RegisteredClaims{Issuer: issuer, Subject: p.UserID.String(), Audience: jwt.ClaimStrings{identity.DefaultAudience},
				IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)), ID: "x"},
			OwnerID: p.OwnerID.String(), KeyID: p.KeyID.String(), Tier: "free", AuthMethod: identity.MethodAPIKey,
		}
		if mutate != nil {
			mutate(&c)
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
		tok.Header["kid"] = f.signer.KeyID()
		tok.Header["typ"] = typ
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + strings.TrimRight(parts[1], "A") + "B." + parts[2]

	for name, token := range map[string]string{
		"missing":               "",
		"garbage":               "not.a.jwt",
		"another audience":      otherAudience,
		"tampered":              tampered,
		"signed by another key": forge(other, identity.TokenType, nil),
		"another typ":           forge(f.key, "JWT", nil),
		"another issuer":        forge(f.key, identity.TokenType, func(c *identity.Claims) { c.Issuer = "https://evil.example" }),
		"no exp":                forge(f.key, identity.TokenType, func(c *identity.Claims) { c.ExpiresAt = nil }),
		"sub not a uuid":        forge(f.key, identity.TokenType, func(c *identity.Claims) { c.Subject = "alice" }),
		"key without key_id":    forge(f.key, identity.TokenType, func(c *identity.Claims) { c.KeyID = "" }),
		"unknown auth_method":   forge(f.key, identity.TokenType, func(c *identity.Claims) { c.AuthMethod = "magic" }),
		"too long":              strings.Repeat("a", 9000),
	} {
		code, _, body := call(t, h, token)
		if code != http.StatusUnauthorized || !strings.Contains(body, identity.CodeInvalidIdentity) {
			t.Errorf("%s: %d %s", name, code, body)
		}
	}
	// The hand-made token with keyhub's key and all claims right passes:
	// the refusals above are for the reason named.
	if code, _, body := call(t, h, forge(f.key, identity.TokenType, nil)); code != http.StatusOK {
		t.Fatalf("a well-formed token: %d %s", code, body)
	}
}

// A token verified once is refused after its exp, cache or not.
func TestVerifiedTokenExpires(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := upstream(f.verifier(t, identity.DefaultAudience))
	p := &keyhub.Principal{UserID: uuid.New(), OwnerID: uuid.New(), Method: keyhub.AuthJWT, Tier: keyhub.TierFree}
	token, _ := f.signer.Identity(p, "")
	if code, _, body := call(t, h, token); code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	f.now.Add(int64(signer.MaxTTL + 10*time.Second)) // past exp and the leeway
	if code, _, _ := call(t, h, token); code != http.StatusUnauthorized {
		t.Fatalf("an expired token: %d", code)
	}
}

// Upstreams import this package without keyhub's internals.
func TestImportsNoInternalPackage(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "/internal/") && strings.HasPrefix(pkg, "github.com/keyhub/keyhub") {
			t.Errorf("api/identity depends on %s", pkg)
		}
	}
}
