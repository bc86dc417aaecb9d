package auth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/changes"
	"github.com/keyhub/keyhub/internal/devissuer"
	"github.com/keyhub/keyhub/internal/jwtverify"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/pgtest"
	"github.com/keyhub/keyhub/internal/postgres"
)

const tokenIssuer = "https://project.supabase.test/auth/v1"

// countingVerifier counts the full verifications (signature and claims)
// the authenticator asks for: a token served from the cache costs none.
type countingVerifier struct {
	*jwtverify.Verifier
	verifications atomic.Int64
}

func (c *countingVerifier) Verify(ctx context.Context, token string) (jwtverify.Claims, error) {
	c.verifications.Add(1)
	return c.Verifier.Verify(ctx, token)
}

// tokenEnv is an authenticator over a real database and a real JWKS
// endpoint (httptest) whose key set the test can swap.
type tokenEnv struct {
	authn    *auth.Authenticator
	verifier *countingVerifier
	store    *postgres.Store
	pool     *pgxpool.Pool
	issuer   *devissuer.Issuer // signs the tokens the JWKS vouches for
	jwks     atomic.Pointer[[]byte]
	// ahead moves the caches' clock (not the verifier's) ahead of the wall clock.
	ahead atomic.Int64
	// clock is how far ahead of the real time the verifier's fetch budget
	// runs, in nanoseconds.
	clock atomic.Int64
}

// now is the caches' clock.
func (e *tokenEnv) now() time.Time { return time.Now().Add(time.Duration(e.ahead.Load())) }

func newTokenEnv(t testing.TB, cacheSize int, staleBound time.Duration) *tokenEnv {
	t.Helper()
	pool, _ := pgtest.NewDB(t)
	bus := changes.New()
	env := &tokenEnv{store: postgres.NewStore(pool, bus), pool: pool, issuer: newIssuer(t)}
	env.publish(env.issuer)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(*env.jwks.Load())
	}))
	t.Cleanup(srv.Close)
	v, err := jwtverify.New(t.Context(), jwtverify.Config{JWKSURL: srv.URL, Issuer: tokenIssuer, Leeway: 30 * time.Second,
		Now: func() time.Time { return time.Now().Add(time.Duration(env.clock.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	env.verifier = &countingVerifier{Verifier: v}
	keys := auth.NewApiKeyCache(env.store, auth.KeyCacheConfig{TTL: time.Minute, Size: 10, NegativeTTL: time.Minute, NegativeSize: 10, StaleBound: staleBound, Now: env.now}, nil)
	env.authn = auth.New(auth.Config{Keys: keys, Tokens: env.verifier, Users: env.store, StaleBound: staleBound, TokenCacheSize: cacheSize, Now: env.now})
	bus.Subscribe(env.authn)
	return env
}

func newIssuer(t testing.TB) *devissuer.Issuer {
	t.Helper()
	issuer, err := devissuer.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return issuer
}

// publish makes the JWKS endpoint serve issuer's keys (and only those).
func (e *tokenEnv) publish(issuer *devissuer.Issuer) {
	body := issuer.JWKS()
	e.jwks.Store(&body)
}

func (e *tokenEnv) token(t testing.TB, issuer *devissuer.Issuer, email string, ttl time.Duration) string {
	t.Helper()
	tok, err := issuer.Token(tokenIssuer, email, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// resolve resolves token and reports how many full verifications it cost.
func (e *tokenEnv) resolve(t *testing.T, token string) (*keyhub.Principal, error, int64) {
	t.Helper()
	before := e.verifier.verifications.Load()
	p, err := e.authn.ResolveToken(context.Background(), token)
	return p, err, e.verifier.verifications.Load() - before
}

// forged returns token with its signature altered in a way that differs
// for each i: a valid-looking token no key verifies.
func forged(token string, i int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	sig := strings.LastIndexByte(token, '.') + 10
	b := []byte(token)
	for j := 0; j < 3; j++ {
		b[sig+j] = alphabet[(i>>(6*j))&63]
	}
	return string(b)
}

func TestTokenCacheVerifiesOnce(t *testing.T) {
	t.Parallel()
	env := newTokenEnv(t, 100, time.Second)
	tok := env.token(t, env.issuer, "once@example.com", time.Hour)
	if _, err, n := env.resolve(t, tok); err != nil || n != 1 {
		t.Fatalf("first use: %v, %d verifications", err, n)
	}
	var wg sync.WaitGroup
	var failures, verifications atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				p, err, n := env.resolve(t, tok)
				if err != nil || p.Method != keyhub.AuthJWT {
					failures.Add(1)
				}
				verifications.Add(n)
			}
		}()
	}
	wg.Wait()
	if failures.Load() != 0 || env.verifier.verifications.Load() != 1 {
		t.Fatalf("400 cached uses: %d failures, %d verifications in all, want 1", failures.Load(), env.verifier.verifications.Load())
	}
	// The hash is of the whole token: another signature is another entry,
	// and a forged one is refused, not answered from the cache.
	if _, err, n := env.resolve(t, forged(tok, 1)); keyhub.ErrorCode(err) != keyhub.CodeInvalidToken || n != 1 {
		t.Fatalf("forged token: %v, %d verifications", err, n)
	}
}

// A flood of distinct invalid tokens never enters the cache, so the
// working set stays cached.
func TestTokenCacheFloodOfInvalidTokens(t *testing.T) {
	t.Parallel()
	const size = 8
	env := newTokenEnv(t, size, time.Second)
	working := make([]string, size)
	for i := range working {
		working[i] = env.token(t, env.issuer, "flood@example.com", time.Hour)
		if _, err := env.authn.ResolveToken(context.Background(), working[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 500 {
		if _, err := env.authn.ResolveToken(context.Background(), forged(working[i%size], i)); keyhub.ErrorCode(err) != keyhub.CodeInvalidToken {
			t.Fatalf("forged token %d: %v", i, err)
		}
	}
	if n := auth.TokenCacheLen(env.authn); n != size {
		t.Fatalf("cache holds %d tokens after the flood, want the %d valid ones", n, size)
	}
	for i, tok := range working {
		if _, err, n := env.resolve(t, tok); err != nil || n != 0 {
			t.Fatalf("working token %d after the flood: %v, %d verifications", i, err, n)
		}
	}
}

// An entry is served until the token's exp, never after it, and the leeway
// the verifier allows is not extended by the cache.
func TestTokenCacheStopsAtExp(t *testing.T) {
	t.Parallel()
	env := newTokenEnv(t, 100, time.Second)
	tok := env.token(t, env.issuer, "exp@example.com", time.Hour)
	p, err, _ := env.resolve(t, tok)
	if err != nil {
		t.Fatal(err)
	}
	exp := p.ExpiresAt
	auth.SetTokenCacheClock(env.authn, func() time.Time { return exp.Add(-time.Millisecond) })
	if _, err, n := env.resolve(t, tok); err != nil || n != 0 {
		t.Fatalf("just before exp: %v, %d verifications", err, n)
	}
	// At exp the cache no longer answers. The verifier's own clock is an
	// hour before exp here, so it accepts; the point is that it is asked,
	// every time, and that nothing past exp is cached again.
	auth.SetTokenCacheClock(env.authn, func() time.Time { return exp })
	for range 3 {
		if _, err, n := env.resolve(t, tok); err != nil || n != 1 {
			t.Fatalf("at exp: %v, %d verifications, want 1", err, n)
		}
	}
}

// A token whose signing key leaves the JWKS is no longer accepted from the
// cache.
func TestTokenCacheDroppedWhenKeyLeavesJWKS(t *testing.T) {
	t.Parallel()
	env := newTokenEnv(t, 100, time.Second)
	old := env.token(t, env.issuer, "rot@example.com", time.Hour)
	if _, err := env.authn.ResolveToken(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	if _, err, n := env.resolve(t, old); err != nil || n != 0 {
		t.Fatalf("cached: %v, %d verifications", err, n)
	}
	// Rotation: the JWKS now holds only a new key. The first token of the
	// new key (unknown kid) makes the verifier refresh the set, once the
	// fetch budget allows (30 s after the fetch at start).
	next := newIssuer(t)
	env.publish(next)
	env.clock.Add(int64(30 * time.Second))
	if _, err := env.authn.ResolveToken(context.Background(), env.token(t, next, "rot@example.com", time.Hour)); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if _, err, n := env.resolve(t, old); keyhub.ErrorCode(err) != keyhub.CodeInvalidToken || n != 1 {
		t.Fatalf("token of the removed key: %v, %d verifications (want INVALID_TOKEN after 1)", err, n)
	}
}

// The tier comes from the user cache on every request, which hears the
// change feed: a tier change, a feed that comes back up, and a feed that is
// down longer than the stale bound are all seen by a cached token, with no
// new signature check.
func TestTokenCacheSeesPrincipalChanges(t *testing.T) {
	t.Parallel()
	const staleBound = time.Minute // the caches' clock moves; nothing waits
	env := newTokenEnv(t, 100, staleBound)
	tok := env.token(t, env.issuer, "tier@example.com", time.Hour)
	p, err := env.authn.ResolveToken(context.Background(), tok)
	if err != nil || p.Tier != keyhub.TierFree {
		t.Fatalf("first use: %+v %v", p, err)
	}
	setTier := func(tier keyhub.Tier) {
		t.Helper()
		if _, err := env.pool.Exec(context.Background(), "UPDATE owners SET tier = $1 WHERE id = $2", tier, p.OwnerID); err != nil {
			t.Fatal(err)
		}
	}
	wantTier := func(step string, tier keyhub.Tier) {
		t.Helper()
		got, err, n := env.resolve(t, tok)
		if err != nil || got.Tier != tier || n != 0 {
			t.Fatalf("%s: tier %v, %v, %d verifications; want %s from the cache", step, got, err, n, tier)
		}
	}

	setTier(keyhub.TierPro) // silently: no observer has heard of it yet
	wantTier("before any notice", keyhub.TierFree)
	env.authn.PrincipalChanged(keyhub.PrincipalChange{OwnerID: p.OwnerID})
	wantTier("after PrincipalChanged", keyhub.TierPro)

	setTier(keyhub.TierTeam)
	env.authn.FeedUp()
	wantTier("after FeedUp", keyhub.TierTeam)

	setTier(keyhub.TierEnterprise)
	env.authn.FeedDown()
	wantTier("feed down within the stale bound", keyhub.TierTeam)
	env.ahead.Add(int64(staleBound + time.Millisecond))
	wantTier("feed down past the stale bound", keyhub.TierEnterprise)
}
