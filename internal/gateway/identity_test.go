package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/api/identity"
	"github.com/keyhub/keyhub/internal/apitest"
)

// claimsUpstream is a product behind keyhub written as the README tells
// one to: every request passes api/identity's middleware, verified against
// keyhub's JWKS for the upstream's audience and keyhub's issuer. It
// records what each request it let through carried.
type claimsUpstream struct {
	*httptest.Server
	verifier atomic.Pointer[identity.Verifier] // set once keyhub runs
	mu       sync.Mutex
	seen     []claimsSeen
}

// claimsSeen is one request the upstream let through: the principal the
// middleware put in its context, and the headers it came with.
type claimsSeen struct {
	principal *identity.Principal
	header    http.Header
}

func newClaimsUpstream(t *testing.T) *claimsUpstream {
	t.Helper()
	u := &claimsUpstream{}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := identity.FromContext(r.Context())
		if !ok {
			http.Error(w, "no principal in the context", http.StatusInternalServerError)
			return
		}
		u.mu.Lock()
		u.seen = append(u.seen, claimsSeen{principal: p, header: r.Header.Clone()})
		u.mu.Unlock()
		_, _ = w.Write([]byte("ok"))
	})
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := u.verifier.Load()
		if v == nil {
			http.Error(w, "no verifier yet", http.StatusServiceUnavailable)
			return
		}
		v.Handler(inner).ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

// last is the last request the upstream let through.
func (u *claimsUpstream) last(t *testing.T) claimsSeen {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		t.Fatal("the upstream let no request through")
	}
	return u.seen[len(u.seen)-1]
}

// TestProxiedIdentityEndToEnd: the upstream of a route verifies the
// Keyhub-Identity of a proxied request against keyhub's JWKS with
// api/identity, for a key and for a user session, on a route with the
// default audience and one naming its own; every claim says who called
// (iss = PUBLIC_URL, aud = the route's, sub, owner_id, key_id for a key
// only, scopes, tier, auth_method, iat, exp at most 60 s after iat, jti),
// and the convenience headers repeat the claims.
func TestProxiedIdentityEndToEnd(t *testing.T) {
	t.Parallel()
	const publicURL = "https://keyhub.example.test"
	const ownAudience = "tasks-api"
	plain, named := newClaimsUpstream(t), newClaimsUpstream(t)
	env := apitest.New(t, map[string]string{
		"PUBLIC_URL":     publicURL,
		"PRODUCT_SCOPES": "app:read,app:write",
		"GATEWAY_ROUTES": "/app/ " + plain.URL + " ; /tasks/ " + named.URL + " audience=" + ownAudience,
	})
	plain.verifier.Store(verifier(t, env, identity.DefaultAudience))
	named.verifier.Store(verifier(t, env, ownAudience))
	key, session := newKey(t, env, []string{"app:read", "keys:read"})

	tokens := map[string]string{} // jti → which request carried it
	for _, tc := range []struct {
		name, cred, path, audience string
		up                         *claimsUpstream
	}{
		{"key", key, "/app/x", identity.DefaultAudience, plain},
		{"user session", session, "/app/x", identity.DefaultAudience, plain},
		{"key, route audience", key, "/tasks/x", ownAudience, named},
		{"user session, route audience", session, "/tasks/x", ownAudience, named},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var me api.Me
			env.Get(t, "/v1/me", tc.cred).Want(t, http.StatusOK, "").JSON(t, &me)
			before := time.Now()
			env.Get(t, tc.path, tc.cred).Want(t, http.StatusOK, "")
			after := time.Now()
			got := tc.up.last(t)
			token := got.header.Get(identity.Header)

			// The middleware verified the signature, issuer and audience;
			// the claims themselves are read as an upstream's own parser
			// would.
			var c identity.Claims
			if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
				t.Fatalf("parse the identity: %v", err)
			}
			wantKeyID, wantMethod := "", identity.MethodJWT
			if me.KeyID != nil {
				wantKeyID, wantMethod = me.KeyID.String(), identity.MethodAPIKey
			}
			if me.AuthMethod != wantMethod {
				t.Fatalf("GET /v1/me says auth_method %q, want %q", me.AuthMethod, wantMethod)
			}
			for claim, pair := range map[string][2]string{
				"iss":         {c.Issuer, publicURL},
				"aud":         {strings.Join(c.Audience, ","), tc.audience},
				"sub":         {c.Subject, me.UserID.String()},
				"owner_id":    {c.OwnerID, me.OwnerID.String()},
				"key_id":      {c.KeyID, wantKeyID},
				"scopes":      {strings.Join(sorted(c.Scopes), ","), strings.Join(sorted(me.Scopes), ",")},
				"tier":        {c.Tier, me.Tier},
				"auth_method": {c.AuthMethod, wantMethod},
			} {
				if pair[0] != pair[1] {
					t.Errorf("claim %s = %q, want %q", claim, pair[0], pair[1])
				}
			}
			if me.Tier == "" || len(me.Scopes) == 0 {
				t.Fatalf("GET /v1/me says too little to compare with: %+v", me)
			}
			if c.IssuedAt == nil || c.ExpiresAt == nil {
				t.Fatalf("iat %v, exp %v: both are required", c.IssuedAt, c.ExpiresAt)
			}
			iat, exp := c.IssuedAt.Time, c.ExpiresAt.Time
			// iat is whole seconds; a token signed earlier is reused for at
			// most half its life (30 s).
			if iat.After(after) || iat.Before(before.Add(-31*time.Second)) {
				t.Errorf("iat %v is not around the request (%v)", iat, before)
			}
			if life := exp.Sub(iat); life <= 0 || life > 60*time.Second {
				t.Errorf("exp is %v after iat, want (0, 60s]", life)
			}
			if !exp.After(after) {
				t.Errorf("exp %v had passed when the upstream got the token", exp)
			}
			if c.ID == "" {
				t.Error("no jti")
			} else if other, seen := tokens[c.ID]; seen {
				t.Errorf("the %s request's jti is the %s request's", tc.name, other)
			}
			tokens[c.ID] = tc.name

			// What the middleware put in the context is the same caller.
			p := got.principal
			if p.UserID.String() != c.Subject || p.OwnerID.String() != c.OwnerID || p.Tier != c.Tier ||
				p.AuthMethod != c.AuthMethod || p.TokenID != c.ID || !slices.Equal(p.Scopes, c.Scopes) ||
				!p.IssuedAt.Equal(iat) || !p.ExpiresAt.Equal(exp) {
				t.Errorf("the middleware's principal %+v differs from the claims %+v", p, c)
			}
			if wantKeyID != "" && p.KeyID.String() != wantKeyID {
				t.Errorf("the middleware's key id %s, want %s", p.KeyID, wantKeyID)
			}

			// The convenience headers equal the claims, once each.
			for name, want := range map[string]string{
				identity.HeaderUserID:  c.Subject,
				identity.HeaderOwnerID: c.OwnerID,
				identity.HeaderKeyID:   c.KeyID,
				identity.HeaderScopes:  strings.Join(c.Scopes, ","),
				identity.HeaderTier:    c.Tier,
			} {
				values := got.header.Values(name)
				switch {
				case want == "" && len(values) != 0:
					t.Errorf("%s: %q, want none for a user session", name, values)
				case want != "" && (len(values) != 1 || values[0] != want):
					t.Errorf("%s: %q, want %q", name, values, want)
				}
			}

			// An identity addressed to one audience is refused by another's
			// verifier.
			otherAudience := ownAudience
			if tc.audience == ownAudience {
				otherAudience = identity.DefaultAudience
			}
			if _, err := verifier(t, env, otherAudience).Verify(context.Background(), token); err == nil {
				t.Errorf("an identity for %q verified for %q", tc.audience, otherAudience)
			}
		})
	}
}

// sorted returns a sorted copy of names.
func sorted(names []string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return out
}
