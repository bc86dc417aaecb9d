package keyhub_test

import (
	"testing"
	"time"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// A leak is revoked unless the owner asked only to be told; an unknown
// value (a bad row) revokes: the safe side.
func TestOwnerPolicyLeaks(t *testing.T) {
	t.Parallel()
	for policy, revokes := range map[keyhub.LeakPolicy]bool{keyhub.LeakRevoke: true, keyhub.LeakNotify: false, "": true, "ignore": true} {
		if got := (keyhub.OwnerPolicy{LeakPolicy: policy}).RevokesLeakedKeys(); got != revokes {
			t.Errorf("%q: RevokesLeakedKeys = %t", policy, got)
		}
		if valid := policy == keyhub.LeakRevoke || policy == keyhub.LeakNotify; policy.Valid() != valid {
			t.Errorf("%q: Valid = %t", policy, policy.Valid())
		}
	}
}

func TestOwnerPolicyLatestExpiry(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 13, 0, 0, 0, time.UTC)
	if got := (keyhub.OwnerPolicy{}).LatestExpiry(now); got != nil {
		t.Fatalf("no bound, yet %v", got)
	}
	if got := (keyhub.OwnerPolicy{MaxKeyLifetime: time.Hour}).LatestExpiry(now); got == nil || !got.Equal(now.Add(time.Hour)) {
		t.Fatalf("1 h bound: %v", got)
	}
}
