package keyhub_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// Every higher tier gives at least as much as the one below it, and a tier
// the code does not know (a bad row) gets the free tier's limits: never
// more than the smallest plan.
func TestTierLimits(t *testing.T) {
	t.Parallel()
	order := []keyhub.Tier{keyhub.TierFree, keyhub.TierPro, keyhub.TierTeam, keyhub.TierEnterprise}
	for i, tier := range order {
		if !tier.Valid() {
			t.Fatalf("%s is not valid", tier)
		}
		l := tier.Limits()
		if l.ActiveKeysPerUser < 1 || l.WSConnections < 1 || l.WSMessagesPerMinute < 1 || l.WSMaxMessageBytes < 1 || l.WSSession <= 0 || l.RequestsPerMinute < 1 {
			t.Fatalf("%s has a limit that allows nothing: %+v", tier, l)
		}
		if i == 0 {
			continue
		}
		below := order[i-1].Limits()
		if l.ActiveKeysPerUser < below.ActiveKeysPerUser || l.WSConnections < below.WSConnections ||
			l.WSMessagesPerMinute < below.WSMessagesPerMinute || l.WSMaxMessageBytes < below.WSMaxMessageBytes ||
			l.WSSession < below.WSSession || l.RequestsPerMinute < below.RequestsPerMinute {
			t.Fatalf("%s gives less than %s: %+v < %+v", tier, order[i-1], l, below)
		}
	}
	for _, unknown := range []keyhub.Tier{"", "gold", "FREE", "enterprise "} {
		if unknown.Valid() {
			t.Fatalf("%q is valid", unknown)
		}
		if unknown.Limits() != keyhub.TierFree.Limits() {
			t.Fatalf("unknown tier %q gets %+v, want the free tier's", unknown, unknown.Limits())
		}
	}
}

func TestKeyStatus(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	before, after := now.Add(-time.Nanosecond), now.Add(time.Nanosecond)
	for _, tc := range []struct {
		name             string
		revoked, expires *time.Time
		want             keyhub.KeyStatus
	}{
		{"never expires", nil, nil, keyhub.KeyActive},
		{"expires later", nil, &after, keyhub.KeyActive},
		{"expires now", nil, &now, keyhub.KeyExpired},
		{"expired", nil, &before, keyhub.KeyExpired},
		{"revoked", &before, nil, keyhub.KeyRevoked},
		{"revoked, then expired", &before, &before, keyhub.KeyRevoked},
		{"revoked, expiry to come", &before, &after, keyhub.KeyRevoked},
	} {
		k := keyhub.Key{RevokedAt: tc.revoked, ExpiresAt: tc.expires}
		if got := k.StatusAt(now); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// The statuses a listing filters by are exactly the three a key has; "all"
// (every status) is the HTTP layer's word, not a status.
func TestKeyStatusValid(t *testing.T) {
	t.Parallel()
	for _, s := range []keyhub.KeyStatus{keyhub.KeyActive, keyhub.KeyRevoked, keyhub.KeyExpired} {
		if !s.Valid() {
			t.Errorf("%s is not valid", s)
		}
	}
	for _, s := range []keyhub.KeyStatus{"", "all", "Active", "disabled", "active "} {
		if s.Valid() {
			t.Errorf("%q is valid", s)
		}
	}
}

func TestPrincipalExpired(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		expiresAt time.Time
		want      bool
	}{
		{time.Time{}, false}, // never
		{now.Add(time.Nanosecond), false},
		{now, true},
		{now.Add(-time.Hour), true},
	} {
		p := keyhub.Principal{ExpiresAt: tc.expiresAt}
		if got := p.Expired(now); got != tc.want {
			t.Errorf("expires %v: Expired = %t", tc.expiresAt, got)
		}
	}
	if (&keyhub.Principal{Method: keyhub.AuthJWT}).IsKey() || !(&keyhub.Principal{Method: keyhub.AuthAPIKey}).IsKey() {
		t.Fatal("IsKey does not follow the method")
	}
}

// The client sees an error's code and safe message, never its cause; the
// code survives wrapping; anything that is not a keyhub error is INTERNAL
// and says nothing of itself.
func TestErrors(t *testing.T) {
	t.Parallel()
	cause := errors.New("pq: password authentication failed for user keyhub at 10.0.0.7")
	for _, tc := range []struct {
		name    string
		err     error
		code    keyhub.Code
		message string
	}{
		{"Errorf", keyhub.Errorf(keyhub.CodeValidation, "name must be at most %d characters", 100), keyhub.CodeValidation, "name must be at most 100 characters"},
		{"wrapped", fmt.Errorf("create key: %w", keyhub.ErrKeyRevoked), keyhub.CodeKeyRevoked, "API key has been revoked"},
		{"Internal", keyhub.Internal(cause), keyhub.CodeInternal, "internal error"},
		{"Unavailable", fmt.Errorf("list: %w", keyhub.Unavailable(cause)), keyhub.CodeUnavailable, "the service is temporarily unavailable; retry later"},
		{"plain error", cause, keyhub.CodeInternal, "internal error"},
		{"internal code with a message", keyhub.Errorf(keyhub.CodeInternal, "row %s is corrupt", "x"), keyhub.CodeInternal, "internal error"},
	} {
		if got := keyhub.ErrorCode(tc.err); got != tc.code {
			t.Errorf("%s: code %s, want %s", tc.name, got, tc.code)
		}
		msg := keyhub.ErrorMessage(tc.err)
		if msg != tc.message {
			t.Errorf("%s: message %q, want %q", tc.name, msg, tc.message)
		}
		if strings.Contains(msg, "10.0.0.7") || strings.Contains(msg, "corrupt") {
			t.Errorf("%s: the client's message leaks the cause: %q", tc.name, msg)
		}
	}
	// The cause stays reachable for the logs.
	if err := keyhub.Unavailable(cause); !errors.Is(err, cause) || !strings.Contains(err.Error(), cause.Error()) {
		t.Fatalf("Unavailable lost its cause: %v", err)
	}
	if got := keyhub.Errorf(keyhub.CodeNotFound, "key not found").Error(); got != "NOT_FOUND: key not found" {
		t.Fatalf("Error() = %q", got)
	}
}

func TestPageSize(t *testing.T) {
	t.Parallel()
	for limit, want := range map[int]int{-1: keyhub.DefaultPageLimit, 0: keyhub.DefaultPageLimit, 1: 1, 50: 50,
		keyhub.MaxPageLimit: keyhub.MaxPageLimit, keyhub.MaxPageLimit + 1: keyhub.MaxPageLimit} {
		if got := (keyhub.Page{Limit: limit}).Size(); got != want {
			t.Errorf("limit %d: size %d, want %d", limit, got, want)
		}
	}
}

func TestEventTypeValid(t *testing.T) {
	t.Parallel()
	for _, typ := range []keyhub.EventType{keyhub.EventCreated, keyhub.EventRefreshed, keyhub.EventRevoked, keyhub.EventExpired} {
		if !typ.Valid() {
			t.Errorf("%s is not valid", typ)
		}
	}
	for _, typ := range []keyhub.EventType{"", "used", "Created", "deleted"} {
		if typ.Valid() {
			t.Errorf("%q is valid", typ)
		}
	}
}
