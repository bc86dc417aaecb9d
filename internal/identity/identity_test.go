package identity_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	wire "github.com/keyhub/keyhub/api/identity"
	"github.com/keyhub/keyhub/internal/identity"
	"github.com/keyhub/keyhub/internal/keyhub"
)

const issuer = "https://keyhub.example.com"

// clock is a settable time source.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 12, 6, 8, 0, 0, 250_000_000, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }

func newSigner(t testing.TB, c *clock, size int) (*identity.Signer, *keyhub.ScopeCatalog) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	scopes, err := keyhub.NewScopeCatalog([]string{"app:read", "app:write"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := identity.New(identity.Config{Key: key, Issuer: issuer, Scopes: scopes, Now: c.now, CacheSize: size})
	if err != nil {
		t.Fatal(err)
	}
	return s, scopes
}

func keyPrincipal(scopes *keyhub.ScopeCatalog) *keyhub.Principal {
	s, _ := scopes.Parse([]string{"keys:read", "app:read"})
	return &keyhub.Principal{UserID: uuid.New(), OwnerID: uuid.New(), Tier: keyhub.TierPro, Method: keyhub.AuthAPIKey,
		KeyID: uuid.New(), KeyPrefix: "mk_AbCdEfGh", Scopes: s}
}

// verify checks token as an upstream would: against the signer's JWKS,
// ES256 only, audience, issuer, exp required; at the clock's time.
func verify(t *testing.T, s *identity.Signer, c *clock, token, audience string) (*jwt.Token, *wire.Claims) {
	t.Helper()
	kf, err := keyfunc.NewJWKSetJSON(s.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	claims := &wire.Claims{}
	parsed, err := jwt.ParseWithClaims(token, claims, kf.Keyfunc, jwt.WithValidMethods([]string{"ES256"}),
		jwt.WithAudience(audience), jwt.WithIssuer(issuer), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithTimeFunc(c.now))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return parsed, claims
}

func TestIdentityClaims(t *testing.T) {
	t.Parallel()
	c := newClock()
	s, scopes := newSigner(t, c, 0)
	p := keyPrincipal(scopes)

	token, err := s.Identity(p, "")
	if err != nil {
		t.Fatal(err)
	}
	parsed, claims := verify(t, s, c, token, wire.DefaultAudience)
	if parsed.Header["kid"] != s.KeyID() || parsed.Header["typ"] != wire.TokenType || parsed.Header["alg"] != "ES256" {
		t.Fatalf("header: %v", parsed.Header)
	}
	if claims.Subject != p.UserID.String() || claims.OwnerID != p.OwnerID.String() || claims.KeyID != p.KeyID.String() ||
		claims.Tier != "pro" || claims.AuthMethod != "api_key" || !slices.Equal(claims.Scopes, []string{"keys:read", "app:read"}) ||
		claims.Issuer != issuer || claims.ID == "" {
		t.Fatalf("claims: %+v", claims)
	}
	life := claims.ExpiresAt.Sub(claims.IssuedAt.Time)
	if life <= 0 || life > identity.MaxTTL || claims.ExpiresAt.Time.After(c.now().Add(identity.MaxTTL)) {
		t.Fatalf("iat %v exp %v: more than %s", claims.IssuedAt, claims.ExpiresAt, identity.MaxTTL)
	}

	// A user session: no key_id, every scope, its own audience.
	user := &keyhub.Principal{UserID: uuid.New(), OwnerID: uuid.New(), Tier: keyhub.TierFree, Method: keyhub.AuthJWT, Scopes: scopes.All()}
	token, err = s.Identity(user, "billing-api")
	if err != nil {
		t.Fatal(err)
	}
	_, claims = verify(t, s, c, token, "billing-api")
	if claims.KeyID != "" || claims.AuthMethod != "jwt" || len(claims.Scopes) != 6 {
		t.Fatalf("user claims: %+v", claims)
	}
}

// A token is reused for the same principal and audience during the first
// half of its life, and never for anything that changes its claims.
func TestIdentityReuse(t *testing.T) {
	t.Parallel()
	c := newClock()
	s, scopes := newSigner(t, c, 0)
	p := keyPrincipal(scopes)
	first, _ := s.Identity(p, "a")

	c.advance(identity.MaxTTL/2 - time.Second)
	if again, _ := s.Identity(p, "a"); again != first {
		t.Fatal("a token was re-signed within the first half of its life")
	}
	if other, _ := s.Identity(p, "b"); other == first {
		t.Fatal("another audience got the same token")
	}
	changed := *p
	changed.Tier = keyhub.TierTeam
	if tok, _ := s.Identity(&changed, "a"); tok == first {
		t.Fatal("a tier change reused the old token")
	}
	changed = *p
	changed.Scopes |= keyhub.ScopeKeysWrite
	if tok, _ := s.Identity(&changed, "a"); tok == first {
		t.Fatal("a scope change reused the old token")
	}

	c.advance(2 * time.Second) // past half of its life
	renewed, _ := s.Identity(p, "a")
	if renewed == first {
		t.Fatal("a token past half its life was handed out again")
	}
	_, claims := verify(t, s, c, renewed, "a")
	if left := claims.ExpiresAt.Sub(c.now()); left < identity.MaxTTL/2 {
		t.Fatalf("the renewed token has only %s left", left)
	}
}

// The token never outlives the credential; an expired one gets none.
func TestIdentityNeverOutlivesTheCredential(t *testing.T) {
	t.Parallel()
	c := newClock()
	s, scopes := newSigner(t, c, 0)
	p := keyPrincipal(scopes)
	p.ExpiresAt = c.now().Add(10 * time.Second)
	token, err := s.Identity(p, "")
	if err != nil {
		t.Fatal(err)
	}
	_, claims := verify(t, s, c, token, wire.DefaultAudience)
	if claims.ExpiresAt.After(p.ExpiresAt) {
		t.Fatalf("exp %v after the key's expiry %v", claims.ExpiresAt, p.ExpiresAt)
	}
	c.set(p.ExpiresAt)
	if _, err := s.Identity(p, ""); err == nil {
		t.Fatal("an expired credential got an identity")
	}
}

// The cache stays within its size whatever the number of principals.
func TestIdentityCacheIsBounded(t *testing.T) {
	t.Parallel()
	c := newClock()
	s, scopes := newSigner(t, c, 32)
	for range 500 {
		if _, err := s.Identity(keyPrincipal(scopes), ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.CachedTokens(); n > 32 || n == 0 {
		t.Fatalf("%d tokens cached, want 1..32", n)
	}
}

// A cache hit allocates nothing.
func TestIdentityHitDoesNotAllocate(t *testing.T) {
	c := newClock()
	s, scopes := newSigner(t, c, 0)
	p := keyPrincipal(scopes)
	if _, err := s.Identity(p, "app"); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(200, func() { _, _ = s.Identity(p, "app") }); n != 0 {
		t.Fatalf("a cache hit allocates %v times", n)
	}
	// Nor does setting its headers on a request that had them (the
	// proxy's, the forward auth answer's): the values are built once.
	h := http.Header{}
	if err := setIdentity(s, h, p, "app"); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(200, func() { _ = setIdentity(s, h, p, "app") }); n != 0 {
		t.Fatalf("setting a cached identity's headers allocates %v times", n)
	}
}

// The headers set from the cache are the principal's, and a user session
// set over a key's drops Keyhub-Key-Id.
func TestSetIdentityHeaders(t *testing.T) {
	t.Parallel()
	c := newClock()
	s, scopes := newSigner(t, c, 0)
	p := keyPrincipal(scopes)
	h := http.Header{}
	h.Add("Keyhub-Key-Id", "forged")
	for range 2 { // signed, then from the cache
		if err := setIdentity(s, h, p, "app"); err != nil {
			t.Fatal(err)
		}
		token, _ := s.Identity(p, "app")
		want := map[string]string{
			"Keyhub-Identity": token, "Keyhub-User-Id": p.UserID.String(), "Keyhub-Owner-Id": p.OwnerID.String(),
			"Keyhub-Key-Id": p.KeyID.String(), "Keyhub-Scopes": "keys:read,app:read", "Keyhub-Tier": "pro",
		}
		for name, v := range want {
			if got := h.Values(name); len(got) != 1 || got[0] != v {
				t.Errorf("%s = %q, want %q", name, got, v)
			}
		}
	}
	user := &keyhub.Principal{UserID: uuid.New(), OwnerID: uuid.New(), Tier: keyhub.TierFree, Method: keyhub.AuthJWT}
	if err := setIdentity(s, h, user, "app"); err != nil {
		t.Fatal(err)
	}
	if _, ok := h["Keyhub-Key-Id"]; ok {
		t.Fatalf("a user session kept Keyhub-Key-Id: %v", h)
	}
	if got := h.Get("Keyhub-User-Id"); got != user.UserID.String() {
		t.Fatalf("Keyhub-User-Id = %q, want the user's", got)
	}
}

// Many goroutines, a few principals, the clock moving: every token they
// get verifies and belongs to the principal asked for (run with -race).
func TestIdentityConcurrent(t *testing.T) {
	t.Parallel()
	c := newClock()
	s, scopes := newSigner(t, c, 64)
	principals := []*keyhub.Principal{keyPrincipal(scopes), keyPrincipal(scopes), keyPrincipal(scopes)}
	var wg sync.WaitGroup
	tokens := make(chan [2]string, 8*200)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				p := principals[(g+i)%len(principals)]
				tok, err := s.Identity(p, "")
				if err != nil {
					t.Error(err)
					return
				}
				tokens <- [2]string{tok, p.UserID.String()}
				if i%50 == 0 {
					c.advance(10 * time.Second)
				}
			}
		}()
	}
	wg.Wait()
	close(tokens)
	kf, _ := keyfunc.NewJWKSetJSON(s.JWKS())
	seen := map[string]bool{}
	for pair := range tokens {
		if seen[pair[0]] {
			continue
		}
		seen[pair[0]] = true
		claims := &wire.Claims{}
		if _, err := jwt.ParseWithClaims(pair[0], claims, kf.Keyfunc, jwt.WithoutClaimsValidation()); err != nil || claims.Subject != pair[1] {
			t.Fatalf("token for %s: sub %q, %v", pair[1], claims.Subject, err)
		}
	}
}

func BenchmarkIdentityCached(b *testing.B) {
	c := newClock()
	s, scopes := newSigner(b, c, 0)
	p := keyPrincipal(scopes)
	if _, err := s.Identity(p, ""); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = s.Identity(p, "")
		}
	})
}

func BenchmarkIdentitySign(b *testing.B) {
	c := newClock()
	s, scopes := newSigner(b, c, 0)
	p := keyPrincipal(scopes)
	b.ReportAllocs()
	for b.Loop() {
		c.advance(identity.MaxTTL) // every call misses
		_, _ = s.Identity(p, "")
	}
}

// setIdentity sets the identity headers of p for audience on h, as the
// proxy and forward auth do.
func setIdentity(s *identity.Signer, h http.Header, p *keyhub.Principal, audience string) error {
	v, err := s.Headers(p, audience)
	if err != nil {
		return err
	}
	v.Set(h)
	return nil
}
