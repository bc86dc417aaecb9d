package jwtverify

import (
	"crypto/elliptic"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// A forged token with a made-up kid every second must not keep a real
// rotation out (it did for up to 5 minutes): a token of a newly published
// key is accepted within 35 s of the publication, wherever it falls in the
// fetch budget, and the JWKS is never fetched twice within 30 s. The clock
// is fake: three minutes pass in milliseconds.
func TestRotationUnderForgedKIDFlood(t *testing.T) {
	t.Parallel()
	k := loadTestKeys()
	next := mustECKey(t, elliptic.P256())
	rotatedJWKS := rotatedJWKS(t, next)
	// Publications just after a fetch are the worst case: the budget was
	// spent by a forged token a moment before the key appeared.
	for _, publishAt := range []time.Duration{
		500 * time.Millisecond, 15 * time.Second, 29*time.Second + 500*time.Millisecond,
		31 * time.Second, 61*time.Second + 500*time.Millisecond,
	} {
		t.Run(publishAt.String(), func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			srv := newTimedJWKSServer(t, defaultJWKS(t), clock)
			var logs logBuffer
			v := newVerifier(t, Config{JWKSURL: srv.URL, Issuer: testIssuer, Logger: logs.logger(), Now: clock.Now})
			rotated := sign(t, jwt.SigningMethodES256, next, "ec-2", claims())

			start := clock.Now()
			var published time.Time
			acceptedAfter := time.Duration(-1)
			for step := 1; clock.Now().Sub(start) < 3*time.Minute; step++ {
				clock.Advance(500 * time.Millisecond)
				if published.IsZero() && clock.Now().Sub(start) >= publishAt {
					srv.publish(rotatedJWKS)
					published = clock.Now()
				}
				if step%2 == 0 { // every second, a forgery with a new kid
					forged := sign(t, jwt.SigningMethodES256, k.ecOther, "forged-"+strconv.Itoa(step), claims())
					if _, err := v.Verify(t.Context(), forged); keyhub.ErrorCode(err) != keyhub.CodeInvalidToken {
						t.Fatalf("forged token at %s: %v, want INVALID_TOKEN", clock.Now().Sub(start), err)
					}
				} else if !published.IsZero() { // every second, the real user
					_, err := v.Verify(t.Context(), rotated)
					if err == nil && acceptedAfter < 0 {
						acceptedAfter = clock.Now().Sub(published)
					}
					if err != nil && acceptedAfter >= 0 {
						t.Fatalf("rotated token refused after it was accepted: %v", err)
					}
				}
			}
			if acceptedAfter < 0 || acceptedAfter > 35*time.Second {
				t.Errorf("token of the new key accepted %s after its publication, want within 35s (-1: never)", acceptedAfter)
			}
			times := srv.times()
			if len(times) < 4 {
				t.Fatalf("%d fetches in 3 minutes of forged kids: the flood never reached the JWKS, the test proves nothing", len(times))
			}
			for i := 1; i < len(times); i++ {
				if gap := times[i].Sub(times[i-1]); gap < 30*time.Second {
					t.Errorf("fetches %d and %d were %s apart, want at least 30s", i-1, i, gap)
				}
			}
			out := logs.String()
			if !strings.Contains(out, `level=INFO msg="JWKS keys changed"`) || !strings.Contains(out, "added_kids=[ec-2]") {
				t.Errorf("no INFO naming the new kid:\n%s", out)
			}
			warnings := strings.Count(out, "refresh budget is spent")
			if warnings == 0 {
				t.Errorf("no WARN for the unknown kids refused while the budget was spent:\n%s", out)
			}
			// One warning per interval, not one per forged token.
			if warnings > 7 {
				t.Errorf("%d budget warnings in 3 minutes, want at most one per 30s", warnings)
			}
		})
	}
}

// Tokens of a new key arriving together (a user's tabs, several users)
// share one fetch and are all accepted; none is refused for a budget its
// neighbour spent.
func TestNewKIDSharesOneFetch(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := newJWKSServer(t, defaultJWKS(t))
	v := newVerifier(t, Config{JWKSURL: srv.URL, Issuer: testIssuer, Now: clock.Now})
	next := mustECKey(t, elliptic.P256())
	srv.publish(rotatedJWKS(t, next))
	clock.Advance(jwksMinFetchInterval)
	before := srv.fetches.Load()

	tokens := make([]string, 50)
	for i := range tokens {
		tokens[i] = sign(t, jwt.SigningMethodES256, next, "ec-2", claims("session_id", strconv.Itoa(i)))
	}
	errs := make([]error, len(tokens))
	var wg sync.WaitGroup
	for i, token := range tokens {
		wg.Go(func() { _, errs[i] = v.Verify(t.Context(), token) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("token %d of the new key: %v", i, err)
		}
	}
	if got := srv.fetches.Load() - before; got != 1 {
		t.Errorf("%d fetches for one new kid, want 1", got)
	}
}

// The periodic fetch spends the same budget: it is skipped within 30 s of
// another fetch, and fetches after that.
func TestPeriodicFetchSharesTheBudget(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := newJWKSServer(t, defaultJWKS(t))
	v := newVerifier(t, Config{JWKSURL: srv.URL, Issuer: testIssuer, Now: clock.Now})
	before := srv.fetches.Load()
	clock.Advance(jwksMinFetchInterval - time.Second)
	if call := v.remote.periodicFetch(); call != nil {
		<-call.done
		t.Fatalf("periodic fetch 29s after the one at start: fetched (%d fetches)", srv.fetches.Load()-before)
	}
	clock.Advance(time.Second)
	call := v.remote.periodicFetch()
	if call == nil {
		t.Fatal("periodic fetch 30s after the last one: skipped")
	}
	<-call.done
	if got := srv.fetches.Load() - before; got != 1 {
		t.Fatalf("%d fetches, want 1", got)
	}
}

// A legacy project signing with the shared secret publishes an empty
// JWKS: nothing to warn about. Without the secret, an empty JWKS means
// every token is refused, and that is a warning.
func TestEmptyJWKSAtStart(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, jwksJSON(t))
	for _, tc := range []struct {
		name     string
		secret   string
		wantWarn bool
	}{
		{"HS256 secret set", testSecret, false},
		{"no secret", "", true},
	} {
		var logs logBuffer
		v := newVerifier(t, Config{JWKSURL: srv.URL, HS256Secret: tc.secret, Issuer: testIssuer, Logger: logs.logger()})
		out := logs.String()
		if got := strings.Contains(out, "level=WARN"); got != tc.wantWarn {
			t.Errorf("%s: warning logged = %t, want %t:\n%s", tc.name, got, tc.wantWarn, out)
		}
		if strings.Contains(out, "no keys yet") {
			t.Errorf("%s: says keys are still to come, but the JWKS answered:\n%s", tc.name, out)
		}
		if tc.secret != "" {
			if _, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claims())); err != nil {
				t.Errorf("%s: HS256 token: %v", tc.name, err)
			}
		}
	}
}
