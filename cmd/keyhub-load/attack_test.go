package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keyhub/keyhub/internal/devissuer"
	"github.com/keyhub/keyhub/internal/jwtverify"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// The attack's tokens must reach what they claim to test: the forged ones
// the verifier's kid lookup (a token refused as malformed before it would
// never spend the JWKS fetch budget, and the rotation figure would be
// void), and tokens of both published keys must verify once the merged set
// is served.
func TestAttackTokensReachTheVerifier(t *testing.T) {
	t.Parallel()
	signing, err := devissuer.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := devissuer.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	merged, err := mergeJWKS(signing.JWKS(), rotated.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(merged)
	}))
	t.Cleanup(jwks.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := jwtverify.New(ctx, jwtverify.Config{JWKSURL: jwks.URL, Issuer: attackIssuer})
	if err != nil {
		t.Fatal(err)
	}
	for name, issuer := range map[string]*devissuer.Issuer{"signing": signing, "rotated": rotated} {
		token, err := issuer.Token(attackIssuer, "attack@example.com", 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(ctx, token); err != nil {
			t.Errorf("a token of the %s key is refused with the merged key set published: %v", name, err)
		}
	}
	_, err = v.Verify(ctx, forgedToken())
	var refused *keyhub.Error
	if !errors.As(err, &refused) || (refused.Reason != "unknown_kid" && refused.Reason != "unknown_kid_throttled") {
		t.Fatalf("forged token: %v, want it refused for its unknown kid", err)
	}
}

// Forward auth refuses in the status it was asked for (refuse_as): the
// attack must still tell a rate limit from a failure.
func TestRateLimited(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		body   string
		want   bool
	}{
		{http.StatusTooManyRequests, `{"error":{"code":"RATE_LIMITED"}}`, true},
		{http.StatusForbidden, `{"error":{"code":"RATE_LIMITED","message":"too many requests"}}`, true},
		{http.StatusForbidden, `{"error":{"code":"INSUFFICIENT_SCOPE"}}`, false},
		{http.StatusUnauthorized, `not json`, false},
	} {
		if got := rateLimited(tc.status, []byte(tc.body)); got != tc.want {
			t.Errorf("rateLimited(%d, %s) = %v, want %v", tc.status, tc.body, got, tc.want)
		}
	}
}

// A route that creates keys is held to the README's steady state (the
// tier's 60 plus one bucket per creation the shipped budget refills), the
// others to the tier's 60; in a window, one creation that comes due just
// inside it counts.
func TestAttackGoal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		freshKeys        bool
		window           time.Duration
		bound, perMinute int
	}{
		{false, 30 * time.Second, 31, 60},
		{true, 30 * time.Second, 91, 120},
		{true, 60 * time.Second, 121, 120},
		{true, 90 * time.Second, 211, 120},
	} {
		bound, perMinute := attackRoute{freshKeys: tc.freshKeys}.goal(tc.window)
		if bound != tc.bound || perMinute != tc.perMinute {
			t.Errorf("goal(freshKeys=%v, %s) = %d, %d/min; want %d, %d/min", tc.freshKeys, tc.window, bound, perMinute, tc.bound, tc.perMinute)
		}
	}
}
