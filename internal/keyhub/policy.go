package keyhub

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// LeakPolicy is what a report that one of an owner's keys leaked (GitHub
// secret scanning) does to the key.
type LeakPolicy string

// The leak policies, as stored in owners.leak_policy.
const (
	// LeakRevoke revokes a leaked key at once (and what was obtained
	// through it). The default.
	LeakRevoke LeakPolicy = "revoke"
	// LeakNotify leaves the key working and only records the report: for
	// owners who rotate leaked keys themselves.
	LeakNotify LeakPolicy = "notify"
)

// Valid reports whether p is a known leak policy.
func (p LeakPolicy) Valid() bool { return p == LeakRevoke || p == LeakNotify }

// Key lifetimes a policy may set: a minute (a shorter-lived key is refused
// anyway) to ten years (the longest expiry a key may ask for).
const (
	MinKeyLifetime = time.Minute
	MaxKeyLifetime = 10 * 365 * 24 * time.Hour
)

// OwnerPolicy is an owner's rules for its keys, whoever acts.
type OwnerPolicy struct {
	// MaxKeyLifetime bounds the expiry of every key created or refreshed
	// from now on (zero: no bound). Keys that exist keep their expiry when
	// it is lowered.
	MaxKeyLifetime time.Duration
	// LeakPolicy is what a leak report does to a key.
	LeakPolicy LeakPolicy
}

// RevokesLeakedKeys reports whether a leaked key of the owner is revoked
// (LeakRevoke), rather than only reported (LeakNotify). An unknown value
// revokes: the safe side.
func (p OwnerPolicy) RevokesLeakedKeys() bool { return p.LeakPolicy != LeakNotify }

// LatestExpiry is the latest expiry a key made at now may have under the
// policy, or nil when the policy sets no bound.
func (p OwnerPolicy) LatestExpiry(now time.Time) *time.Time {
	if p.MaxKeyLifetime <= 0 {
		return nil
	}
	t := now.Add(p.MaxKeyLifetime)
	return &t
}

// OwnerPolicyUpdate is a validated change of an owner's policy: nil fields
// stay as they are.
type OwnerPolicyUpdate struct {
	// MaxKeyLifetime is the new bound; a pointer to zero removes it.
	MaxKeyLifetime *time.Duration
	LeakPolicy     *LeakPolicy
}

// OwnerPolicyService reads and changes owners' policies.
type OwnerPolicyService interface {
	// OwnerPolicy is the owner's policy as stored (the leak intake reads
	// LeakPolicy through it).
	OwnerPolicy(ctx context.Context, ownerID uuid.UUID) (OwnerPolicy, error)
	// UpdateOwnerPolicy changes the policy of p's owner; only a dashboard
	// user may (the route refuses keys).
	UpdateOwnerPolicy(ctx context.Context, p *Principal, in OwnerPolicyUpdate) (OwnerPolicy, error)
}
