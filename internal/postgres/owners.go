package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keyhub/keyhub/internal/dbgen"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// Store keeps the owners' policies.
var _ keyhub.OwnerPolicyService = (*Store)(nil)

// OwnerPolicy returns the owner's policy as stored.
func (s *Store) OwnerPolicy(ctx context.Context, ownerID uuid.UUID) (keyhub.OwnerPolicy, error) {
	row, err := s.q.GetOwnerPolicy(ctx, s.pool, ownerID)
	if err != nil {
		return keyhub.OwnerPolicy{}, dbError(err, "owner")
	}
	return ownerPolicyOf(row.MaxKeyLifetimeSeconds, row.LeakPolicy), nil
}

// UpdateOwnerPolicy changes the policy of p's owner. The acting user is
// re-checked like any write's (lockActor): a session whose user is gone
// or moved to another owner changes nothing.
func (s *Store) UpdateOwnerPolicy(ctx context.Context, p *keyhub.Principal, in keyhub.OwnerPolicyUpdate) (keyhub.OwnerPolicy, error) {
	var out keyhub.OwnerPolicy
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := s.lockActor(ctx, tx, p, p.UserID); err != nil {
			return err
		}
		params := dbgen.UpdateOwnerPolicyParams{ID: p.OwnerID, SetMaxLifetime: in.MaxKeyLifetime != nil}
		if in.MaxKeyLifetime != nil && *in.MaxKeyLifetime > 0 {
			secs := int64(*in.MaxKeyLifetime / time.Second)
			params.MaxKeyLifetimeSeconds = &secs
		}
		if in.LeakPolicy != nil {
			leak := string(*in.LeakPolicy)
			params.LeakPolicy = &leak
		}
		row, err := s.q.UpdateOwnerPolicy(ctx, tx, params)
		if err != nil {
			return err
		}
		out = ownerPolicyOf(row.MaxKeyLifetimeSeconds, row.LeakPolicy)
		return nil
	})
	if err != nil {
		return keyhub.OwnerPolicy{}, dbError(err, "owner")
	}
	return out, nil
}

// ownerPolicyOf converts the stored columns.
func ownerPolicyOf(maxLifetimeSeconds *int64, leak string) keyhub.OwnerPolicy {
	policy := keyhub.OwnerPolicy{LeakPolicy: keyhub.LeakPolicy(leak)}
	if maxLifetimeSeconds != nil {
		policy.MaxKeyLifetime = time.Duration(*maxLifetimeSeconds) * time.Second
	}
	return policy
}

// latestExpiry is the latest expiry the owner's max_key_lifetime allows
// a key made at now, or nil when the policy sets none. Read in the
// write's transaction, like everything a write decides on.
func (s *Store) latestExpiry(ctx context.Context, tx pgx.Tx, ownerID uuid.UUID, now time.Time) (*time.Time, error) {
	row, err := s.q.GetOwnerPolicy(ctx, tx, ownerID)
	if err != nil {
		return nil, err
	}
	return ownerPolicyOf(row.MaxKeyLifetimeSeconds, row.LeakPolicy).LatestExpiry(now), nil
}

// policyExpiry applies the owner's max_key_lifetime to the expiry a create
// at now asks for (nil: never): none asked gets the longest the policy
// allows, and one beyond it is refused with KEY_LIFETIME_EXCEEDS_POLICY.
func (s *Store) policyExpiry(ctx context.Context, tx pgx.Tx, ownerID uuid.UUID, want *time.Time, now time.Time) (*time.Time, error) {
	latest, err := s.latestExpiry(ctx, tx, ownerID, now)
	switch {
	case err != nil:
		return nil, err
	case latest == nil:
		return want, nil
	case want == nil:
		return latest, nil
	case want.After(*latest):
		return nil, keyhub.Errorf(keyhub.CodeLifetimeExceedsPolicy, "the owner's policy allows keys to live at most %d seconds: ask for an earlier expiry, or none to get the longest allowed", int64(latest.Sub(now)/time.Second))
	}
	return want, nil
}
