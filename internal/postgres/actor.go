package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keyhub/keyhub/internal/dbgen"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// actor is the acting credential of a write as the database holds it
// inside the write's transaction. A principal comes from a cache that may
// be stale (a revoke whose notice has not arrived yet): at worst it may let
// a read through, never a write, so every rule of a write is applied to
// actor, not to the principal.
type actor struct {
	principal *keyhub.Principal
	// scopes are the acting key's scopes as stored; a user's are all.
	scopes keyhub.Scopes
	// expiresAt is the acting key's expiry, which nothing the key makes
	// may outlive; nil for a user, or a key that never expires.
	expiresAt *time.Time
	// tiers are the owners' tiers of the locked users, as they are now.
	tiers map[uuid.UUID]keyhub.Tier
	// at stamps everything the write changes (keys created or revoked, its
	// events): the time it took the owner's write lock, so stamps follow
	// commit order (see LockOwnerWrites).
	at time.Time
}

// Errors of the re-check, worded like the authenticator's.
var (
	errActingUserGone  = keyhub.Errorf(keyhub.CodeInvalidToken, "the user of this session no longer exists: sign in again")
	errActingUserMoved = keyhub.Errorf(keyhub.CodeInvalidToken, "the user of this session now belongs to another owner: send the request again")
)

// lockActor starts every key write: it takes the owner's write lock (the
// write's stamp, see LockOwnerWrites), locks the rows of the acting user
// and of keysOf, the user whose keys the write changes (in id order, so
// two writes never deadlock), then re-reads the acting credential.
//
// Every create, refresh and revoke holds the lock of the user whose keys
// it changes, and an acting key belongs to the acting user: under the lock
// no other write can revoke the acting key or change the user's keys until
// this transaction ends. So the re-check cannot go stale before the write
// commits, and counting keys and inserting one cannot interleave.
func (s *Store) lockActor(ctx context.Context, tx pgx.Tx, p *keyhub.Principal, keysOf uuid.UUID) (actor, error) {
	if s.beforeLock != nil {
		s.beforeLock()
	}
	at, err := s.q.LockOwnerWrites(ctx, tx, p.OwnerID)
	if err != nil {
		return actor{}, fmt.Errorf("lock the writes of owner %s: %w", p.OwnerID, err)
	}
	ids := []uuid.UUID{p.UserID}
	if keysOf != p.UserID {
		ids = append(ids, keysOf)
	}
	rows, err := s.q.LockUsersForKeys(ctx, tx, ids)
	if err != nil {
		return actor{}, err
	}
	a := actor{principal: p, tiers: make(map[uuid.UUID]keyhub.Tier, len(rows)), at: at}
	var actingOwner uuid.UUID
	for _, r := range rows {
		a.tiers[r.ID] = keyhub.Tier(r.Tier)
		if r.ID == p.UserID {
			actingOwner = r.DefaultOwnerID
		}
	}
	if _, ok := a.tiers[p.UserID]; !ok {
		if p.IsKey() {
			return actor{}, keyhub.ErrUnknownKey
		}
		return actor{}, errActingUserGone
	}
	// A dashboard user acts for its default owner; a key, for the owner it
	// belongs to, whatever its user's default is now.
	if !p.IsKey() && actingOwner != p.OwnerID {
		return actor{}, errActingUserMoved
	}
	if _, ok := a.tiers[keysOf]; !ok {
		return actor{}, keyhub.Errorf(keyhub.CodeNotFound, "key not found")
	}
	if !p.IsKey() {
		a.scopes = p.Scopes
		return a, nil
	}
	row, err := s.q.GetKey(ctx, tx, dbgen.GetKeyParams{ID: p.KeyID, OwnerID: p.OwnerID})
	if errors.Is(err, pgx.ErrNoRows) {
		return actor{}, keyhub.ErrUnknownKey
	}
	if err != nil {
		return actor{}, err
	}
	key := s.keyFromRow(row)
	switch {
	case key.UserID != p.UserID:
		return actor{}, keyhub.ErrUnknownKey
	case key.StatusAt(at) == keyhub.KeyRevoked:
		return actor{}, keyhub.ErrKeyRevoked
	case key.StatusAt(at) == keyhub.KeyExpired:
		return actor{}, keyhub.ErrKeyExpired
	case !key.Scopes.Has(keyhub.ScopeKeysWrite):
		return actor{}, keyhub.Errorf(keyhub.CodeInsufficientScope, "this API key lacks the keys:write scope")
	}
	// A cache may not have heard that the key, or one it was obtained
	// through, was disabled.
	if disabled, err := s.q.KeyDisabled(ctx, tx, key.ID); err != nil {
		return actor{}, err
	} else if disabled {
		return actor{}, keyhub.ErrKeyDisabled
	}
	a.scopes, a.expiresAt = key.Scopes, key.ExpiresAt
	return a, nil
}

// mayChange refuses a refresh or revoke of a key with scopes the actor
// lacks: a key could otherwise end (or, by a refresh, take over the
// secret of) a key more powerful than itself.
func (a actor) mayChange(target keyhub.Key) error {
	if !a.scopes.Has(target.Scopes) {
		return keyhub.Errorf(keyhub.CodeInsufficientScope, "a key can only refresh or revoke keys whose scopes it holds itself")
	}
	return nil
}

// mayGrant refuses to give a key (a new one, or one whose scopes change)
// scopes the actor lacks: a key cannot make a key more powerful than
// itself. A user session holds every scope.
func (a actor) mayGrant(scopes keyhub.Scopes) error {
	if !a.scopes.Has(scopes) {
		return keyhub.Errorf(keyhub.CodeInsufficientScope, "a key can only be given scopes its creator holds")
	}
	return nil
}

// capExpiry is the expiry of a key the actor makes, given the one asked
// for (nil: never): a key made by a key never outlives it, so the answer
// is the earlier of the two. A user session has no such bound.
func (a actor) capExpiry(want *time.Time) *time.Time {
	if a.expiresAt == nil || (want != nil && !want.After(*a.expiresAt)) {
		return want
	}
	t := *a.expiresAt
	return &t
}
