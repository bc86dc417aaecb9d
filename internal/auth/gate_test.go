package auth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/pgtest"
	"github.com/keyhub/keyhub/internal/postgres"
	"github.com/keyhub/keyhub/internal/ratelimit"
)

// gateFixture is a gate over in-process limits: a free tier of 3 requests
// a minute and 2 failed authentications per address.
func gateFixture(t *testing.T) *auth.Gate {
	t.Helper()
	limits := ratelimit.New(ratelimit.Config{
		TierRPM:      map[keyhub.Tier]int{keyhub.TierFree: 3},
		AuthFailures: ratelimit.Limit{Rate: 2, Burst: 2, Period: time.Minute},
	})
	return auth.NewGate(auth.New(auth.Config{}), limits, nil, nil)
}

func keyPrincipal(scopes keyhub.Scopes) *keyhub.Principal {
	return &keyhub.Principal{UserID: uuid.New(), OwnerID: uuid.New(), Tier: keyhub.TierFree, Method: keyhub.AuthAPIKey, KeyID: uuid.New(), Scopes: scopes}
}

func resolveTo(p *keyhub.Principal, err error, calls *int) auth.Resolver {
	return func(context.Context) (*keyhub.Principal, string, error) {
		*calls++
		return p, "test", err
	}
}

// The order of the one admission step: bucket spent before the scope is
// judged, refusals carrying their decision, failures counted per address
// and, once over, refused before the credential is even resolved.
func TestGateOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := gateFixture(t)
	client := netip.MustParseAddr("192.0.2.7")
	calls := 0

	p := keyPrincipal(keyhub.ScopeKeysRead)
	adm, err := g.AdmitWith(ctx, client, auth.Need{Scope: keyhub.ScopeKeysRead}, resolveTo(p, nil, &calls))
	if err != nil || adm.Principal != p || !adm.Spent || adm.Decision.Remaining != 2 {
		t.Fatalf("admit: %+v, %v", adm, err)
	}
	// Lacking the scope is refused, and still spends (so refused requests
	// cannot be made for free).
	_, err = g.AdmitWith(ctx, client, auth.Need{Scope: keyhub.ScopeKeysWrite}, resolveTo(p, nil, &calls))
	if keyhub.ErrorCode(err) != keyhub.CodeInsufficientScope {
		t.Fatalf("missing scope: %v", err)
	}
	_, _ = g.AdmitWith(ctx, client, auth.Need{}, resolveTo(p, nil, &calls))
	_, err = g.AdmitWith(ctx, client, auth.Need{}, resolveTo(p, nil, &calls))
	var refused *auth.Refusal
	if keyhub.ErrorCode(err) != keyhub.CodeRateLimited || !asRefusal(err, &refused) || refused.Decision.RetryAfter <= 0 {
		t.Fatalf("4th request of a 3/min key: %v", err)
	}
	h := http.Header{}
	if !auth.SetRefusalHeaders(h, err) || h.Get("Retry-After") == "" || h.Get("RateLimit-Policy") == "" {
		t.Fatalf("refusal headers: %v", h)
	}

	// Failed authentications: two are 401s, the third is a 429, and after
	// that the resolver is not even called.
	bad := keyhub.Errorf(keyhub.CodeUnknownAPIKey, "unknown")
	for i, want := range []keyhub.Code{keyhub.CodeUnknownAPIKey, keyhub.CodeUnknownAPIKey, keyhub.CodeRateLimited} {
		if _, err := g.AdmitWith(ctx, client, auth.Need{}, resolveTo(nil, bad, &calls)); keyhub.ErrorCode(err) != want {
			t.Fatalf("failure %d: %v, want %s", i+1, err, want)
		}
	}
	before := calls
	if _, err := g.AdmitWith(ctx, client, auth.Need{}, resolveTo(p, nil, &calls)); keyhub.ErrorCode(err) != keyhub.CodeRateLimited || calls != before {
		t.Fatalf("blocked address: %v, resolver called %d times", err, calls-before)
	}
	if err := g.RefuseBlocked(client); keyhub.ErrorCode(err) != keyhub.CodeRateLimited {
		t.Fatalf("RefuseBlocked: %v", err)
	}
	// Another address is not blocked.
	if _, err := g.AdmitWith(ctx, netip.MustParseAddr("192.0.2.8"), auth.Need{}, resolveTo(keyPrincipal(0), nil, &calls)); err != nil {
		t.Fatalf("other address: %v", err)
	}
}

func asRefusal(err error, target **auth.Refusal) bool {
	r, ok := err.(*auth.Refusal)
	*target = r
	return ok
}

// An expired credential is refused (and counted as a failure) whatever
// the resolver said, with the code of its kind.
func TestGateRefusesExpired(t *testing.T) {
	t.Parallel()
	g := gateFixture(t)
	calls := 0
	key := keyPrincipal(keyhub.BuiltinScopes)
	key.ExpiresAt = time.Now().Add(-time.Second)
	user := &keyhub.Principal{UserID: uuid.New(), Tier: keyhub.TierFree, Method: keyhub.AuthJWT, Scopes: keyhub.BuiltinScopes, ExpiresAt: time.Now().Add(-time.Second)}
	for _, tc := range []struct {
		p    *keyhub.Principal
		want keyhub.Code
	}{{key, keyhub.CodeKeyExpired}, {user, keyhub.CodeExpiredToken}} {
		if _, err := g.AdmitWith(context.Background(), netip.MustParseAddr("192.0.2.9"), auth.Need{}, resolveTo(tc.p, nil, &calls)); keyhub.ErrorCode(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.p.Method, err, tc.want)
		}
	}
}

// Admit on headers: no credential is anonymous only where the need allows
// it; a malformed header is refused, never anonymous.
func TestGateAdmitHeaders(t *testing.T) {
	t.Parallel()
	g := gateFixture(t)
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	if adm, err := g.Admit(r, auth.Need{Anonymous: true}); err != nil || adm.Principal != nil || adm.Spent {
		t.Fatalf("anonymous allowed: %+v %v", adm, err)
	}
	if _, err := g.Admit(r, auth.Need{}); keyhub.ErrorCode(err) != keyhub.CodeMissingCredentials {
		t.Fatalf("anonymous refused: %v", err)
	}
	r.Header.Set("Authorization", "Basic abc")
	if _, err := g.Admit(r, auth.Need{Anonymous: true}); keyhub.ErrorCode(err) != keyhub.CodeInvalidToken {
		t.Fatalf("malformed header: %v", err)
	}
}

// AdmitKey is the gate for a key asked about on its holder's behalf: a
// cached key costs no database lookup, each verification spends the key's
// bucket and judges its scope, and mistyped keys are refused as such
// however many there are (no address pays for them: the asker's is not
// the key holder's).
func TestGateAdmitKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewDB(t)
	store := &countingStore{Store: postgres.NewStore(pool, nil)}
	cache := auth.NewApiKeyCache(store, auth.KeyCacheConfig{TTL: time.Minute, Size: 10, NegativeTTL: time.Minute, NegativeSize: 10}, nil)
	limits := ratelimit.New(ratelimit.Config{
		TierRPM:      map[keyhub.Tier]int{keyhub.TierFree: 3},
		AuthFailures: ratelimit.Limit{Rate: 2, Burst: 2, Period: time.Minute},
	})
	g := auth.NewGate(auth.New(auth.Config{Keys: cache}), limits, nil, nil)
	k, _ := newKey(t, store.Store, "verify@example.com")

	for want := 2; want >= 1; want-- {
		adm, err := g.AdmitKey(ctx, k.Secret, netip.Addr{}, auth.Need{Scope: keyhub.ScopeKeysRead})
		if err != nil || adm.Principal.KeyID != k.Key.ID || !adm.Spent || adm.Decision.Remaining != want {
			t.Fatalf("want %d remaining: %+v %v", want, adm, err)
		}
	}
	if n := store.lookups.Load(); n != 1 {
		t.Fatalf("two verifications made %d database lookups, want 1 (the first)", n)
	}
	// Lacking the scope is refused and still spends: the last request.
	if _, err := g.AdmitKey(ctx, k.Secret, netip.Addr{}, auth.Need{Scope: keyhub.Scopes(1 << 40)}); keyhub.ErrorCode(err) != keyhub.CodeInsufficientScope {
		t.Fatalf("missing scope: %v", err)
	}
	var refused *auth.Refusal
	if _, err := g.AdmitKey(ctx, k.Secret, netip.Addr{}, auth.Need{}); !asRefusal(err, &refused) || refused.Decision.RetryAfter <= 0 {
		t.Fatalf("4th verification of a 3/min key: %v", err)
	}

	for i := range 5 {
		unknown, _ := apikey.Generate()
		for _, key := range []string{unknown, "mk_typo", "not a key"} {
			if _, err := g.AdmitKey(ctx, key, netip.Addr{}, auth.Need{}); keyhub.ErrorCode(err) != keyhub.CodeInvalidAPIKey && keyhub.ErrorCode(err) != keyhub.CodeUnknownAPIKey {
				t.Fatalf("round %d, %q: %v", i, key, err)
			}
		}
	}
}
