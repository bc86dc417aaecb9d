package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/sqlc-dev/pqtype"

	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/changes"
	"github.com/keyhub/keyhub/internal/dbgen"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// CreateKey creates a key for the principal's user, within its tier's limit
// of active keys, and writes its "created" event in the same transaction.
// The acting credential is re-checked under the user's lock (lockActor);
// a key made by a key gets at most its creator's scopes and lifetime.
func (s *Store) CreateKey(ctx context.Context, p *keyhub.Principal, in keyhub.CreateKeyInput, meta keyhub.RequestMeta) (keyhub.NewKey, error) {
	var created keyhub.NewKey
	var event keyhub.Event
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		a, err := s.lockActor(ctx, tx, p, p.UserID)
		if err != nil {
			return err
		}
		if err := a.mayGrant(in.Scopes); err != nil {
			return err
		}
		// Grace-period predecessors count too: stricter than the invariant
		// needs, and what the tier's limit has always meant here.
		active, err := s.q.CountActiveKeysOfUser(ctx, tx, p.UserID)
		if err != nil {
			return err
		}
		if in.SingleKey && active > 0 {
			return keyhub.Errorf(keyhub.CodeKeyAlreadyExists, "you already have an active API key: refresh it, or revoke it first")
		}
		tier := a.tiers[p.UserID]
		if limit := tier.Limits().ActiveKeysPerUser; active >= int64(limit) {
			keys := "keys"
			if limit == 1 {
				keys = "key"
			}
			return keyhub.Errorf(keyhub.CodeKeyLimitReached, "the %s tier allows %d active %s per user: revoke or refresh one", tier, limit, keys)
		}
		expiresAt, err := s.policyExpiry(ctx, tx, p.OwnerID, in.ExpiresAt, a.at)
		if err != nil {
			return err
		}
		expiresAt = a.capExpiry(expiresAt)
		if err := checkAutoRotate(in.AutoRotateBefore, a.at, expiresAt); err != nil {
			return err
		}
		created, err = s.insertKey(ctx, tx, a, keyRow{OwnerID: p.OwnerID, UserID: p.UserID, Name: in.Name, Scopes: s.scopes.Names(in.Scopes),
			ExpiresAt: expiresAt, Metadata: in.Metadata, AllowedCidrs: in.AllowedCIDRs, AutoRotateBefore: in.AutoRotateBefore})
		if err != nil {
			return err
		}
		if p.IsKey() { // revoking the creator ends the key
			if err := s.q.AddKeyParent(ctx, tx, dbgen.AddKeyParentParams{KeyID: created.Key.ID, ParentID: p.KeyID, OwnerID: p.OwnerID}); err != nil {
				return fmt.Errorf("record the creator of %s: %w", created.Key.ID, err)
			}
		}
		event, err = s.insertEvent(ctx, tx, a, created.Key, keyhub.EventCreated, meta, nil)
		if err != nil {
			return err
		}
		return s.fillCreators(ctx, tx, p.OwnerID, &created.Key)
	})
	if err != nil {
		return keyhub.NewKey{}, dbError(err, "key")
	}
	s.publish(nil, []keyhub.Event{event})
	return created, nil
}

// keyRow is what a new key is made of: its owner, user, name, stored
// scope names, expiry and controls, and, for a refresh, the predecessor's
// lineage (uuid.Nil starts a new one).
type keyRow struct {
	OwnerID, UserID uuid.UUID
	Name            string
	Scopes          []string
	ExpiresAt       *time.Time
	Metadata        []byte // nil: {}
	AllowedCidrs    []netip.Prefix
	LineageID       uuid.UUID
	// AutoRotateBefore marks the key for zero-touch rotation (zero: none).
	AutoRotateBefore time.Duration
}

// insertKey stores a new key, stamped by a, with a fresh secret.
func (s *Store) insertKey(ctx context.Context, tx pgx.Tx, a actor, k keyRow) (keyhub.NewKey, error) {
	var autoRotateSeconds *int64
	if k.AutoRotateBefore > 0 {
		secs := int64(k.AutoRotateBefore / time.Second)
		autoRotateSeconds = &secs
	}
	secret, err := apikey.Generate()
	if err != nil {
		return keyhub.NewKey{}, err
	}
	if k.Metadata == nil {
		k.Metadata = []byte("{}")
	}
	if k.AllowedCidrs == nil {
		k.AllowedCidrs = []netip.Prefix{}
	}
	row, err := s.q.InsertKey(ctx, tx, dbgen.InsertKeyParams{
		OwnerID:                 k.OwnerID,
		UserID:                  k.UserID,
		Name:                    k.Name,
		KeyPrefix:               apikey.DisplayPrefix(secret),
		KeyHash:                 apikey.HashHex(secret),
		Scopes:                  k.Scopes,
		ExpiresAt:               k.ExpiresAt,
		CreatedAt:               a.at,
		LineageID:               uuid.NullUUID{UUID: k.LineageID, Valid: k.LineageID != uuid.Nil},
		Metadata:                k.Metadata,
		AllowedCidrs:            k.AllowedCidrs,
		AutoRotateBeforeSeconds: autoRotateSeconds,
	})
	if err != nil {
		return keyhub.NewKey{}, fmt.Errorf("insert key: %w", err)
	}
	return keyhub.NewKey{Key: s.keyFromRow(row), Secret: secret}, nil
}

// lockTarget locks the users of a write on keyID (see lockActor) and then
// the key's row. The key is read once without a lock first, only to learn
// its user: a key's user never changes.
func (s *Store) lockTarget(ctx context.Context, tx pgx.Tx, p *keyhub.Principal, keyID uuid.UUID) (actor, dbgen.ApiKey, error) {
	target, err := s.q.GetKey(ctx, tx, dbgen.GetKeyParams{ID: keyID, OwnerID: p.OwnerID})
	if err != nil {
		return actor{}, dbgen.ApiKey{}, err
	}
	a, err := s.lockActor(ctx, tx, p, target.UserID)
	if err != nil {
		return actor{}, dbgen.ApiKey{}, err
	}
	target, err = s.q.GetKeyForUpdate(ctx, tx, dbgen.GetKeyForUpdateParams{ID: keyID, OwnerID: p.OwnerID})
	return a, target, err
}

// lockChangeable is lockTarget for a write that changes the key itself
// (revoke, update, disable): it also refuses an actor that may not change
// it, and returns the key as the domain sees it.
func (s *Store) lockChangeable(ctx context.Context, tx pgx.Tx, p *keyhub.Principal, keyID uuid.UUID) (actor, dbgen.ApiKey, keyhub.Key, error) {
	a, row, err := s.lockTarget(ctx, tx, p, keyID)
	if err != nil {
		return actor{}, dbgen.ApiKey{}, keyhub.Key{}, err
	}
	key := s.keyFromRow(row)
	if err := a.mayChange(key); err != nil {
		return actor{}, dbgen.ApiKey{}, keyhub.Key{}, err
	}
	return a, row, key, nil
}

// RefreshKey rotates a key in one transaction: it creates the replacement
// (same owner, user, scopes and lifetime, capped by an acting key's
// expiry), links it from the old key and ends the old key, at once or
// after the grace period, never after the replacement expires. A working
// predecessor of the old key loses its grace at once, so a key never has
// more than one working predecessor. The old row is locked first, so of
// two concurrent refreshes one wins and the other gets
// KEY_ALREADY_REFRESHED. With in.Deliver the new secret goes sealed to
// the old key's open connections (see rotate).
func (s *Store) RefreshKey(ctx context.Context, p *keyhub.Principal, keyID uuid.UUID, in keyhub.RefreshInput, meta keyhub.RequestMeta) (keyhub.Refreshed, error) {
	if in.Grace < 0 || in.Grace > keyhub.MaxRefreshGrace {
		return keyhub.Refreshed{}, keyhub.Errorf(keyhub.CodeValidation, "grace_period must be between 0 and %s", keyhub.MaxRefreshGrace)
	}
	if in.Deliver && in.Grace <= 0 {
		// With no grace the old key's sockets close at once: the daemon
		// would have no time to reconnect with what it was sent.
		return keyhub.Refreshed{}, keyhub.Errorf(keyhub.CodeValidation, "deliver \"connections\" needs a grace_period: the daemons reconnect with the new key within it")
	}
	var r rotation
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		a, oldRow, err := s.lockTarget(ctx, tx, p, keyID)
		if err != nil {
			return err
		}
		r, err = s.rotate(ctx, tx, a, oldRow, in, meta)
		if err != nil {
			return err
		}
		return s.fillCreators(ctx, tx, p.OwnerID, &r.out.New.Key, &r.out.Old)
	})
	if err != nil {
		return keyhub.Refreshed{}, dbError(err, "key")
	}
	r.publish(s)
	return r.out, nil
}

// rotation is what one rotation wrote, for publishing once it committed.
type rotation struct {
	out        keyhub.Refreshed
	events     []keyhub.Event
	keyChanges []keyhub.KeyChange
	deliveries []keyhub.KeyDelivery
}

// publish announces a committed rotation on this process: key changes and
// events first, then the sealed secrets (the change feed carries the same
// to the other processes; the hub delivers each once).
func (r rotation) publish(s *Store) {
	s.publish(r.keyChanges, r.events)
	s.bus.PublishDeliveries(r.deliveries)
}

// errRefreshDisabled refuses to refresh a disabled key (or one obtained
// through a disabled key); the sweeper's own rotation skips such a key.
var errRefreshDisabled = keyhub.Errorf(keyhub.CodeKeyNotActive, "this key is disabled (or the key it was obtained through is): enable it before refreshing it")

// rotate does a refresh of oldRow (locked) by a, inside tx. a's principal
// is nil when the system rotates on its own (auto_rotate_before): then
// nothing is capped by an acting key, but the replacement never outlives
// a key it can be obtained through.
func (s *Store) rotate(ctx context.Context, tx pgx.Tx, a actor, oldRow dbgen.ApiKey, in keyhub.RefreshInput, meta keyhub.RequestMeta) (rotation, error) {
	var r rotation
	old := s.keyFromRow(oldRow)
	now := a.at
	switch {
	case old.ReplacedBy != nil:
		return r, keyhub.Errorf(keyhub.CodeKeyAlreadyRefreshed, "this key was already refreshed; refresh its replacement instead")
	case old.StatusAt(now) != keyhub.KeyActive:
		return r, keyhub.Errorf(keyhub.CodeKeyNotActive, "only an active key can be refreshed; this one is %s", old.StatusAt(now))
	}
	if err := a.mayChange(old); err != nil {
		return r, err
	}
	// A disabled key is paused, not ended: a refresh would hand out a
	// working secret in its place.
	if disabled, err := s.q.KeyDisabled(ctx, tx, old.ID); err != nil {
		return r, err
	} else if disabled {
		return r, errRefreshDisabled
	}
	var recipients []dbgen.HandoverConnectionsRow
	if in.Deliver {
		var err error
		if recipients, err = s.handoverRecipients(ctx, tx, old.ID); err != nil {
			return r, err
		}
	}
	change, ended, err := s.endGrace(ctx, tx, a, old, meta, "successor_refreshed")
	if err != nil {
		return r, err
	}
	// The keys whose children pass to the replacement: the old key, and
	// its predecessor when the refresh ends that one's grace.
	handedOver := []uuid.UUID{old.ID}
	if ended != nil {
		r.keyChanges, r.events = append(r.keyChanges, *change), append(r.events, *ended)
		handedOver = append(handedOver, change.KeyID)
	}
	name := in.Name
	if name == "" {
		name = old.Name
	}
	// The replacement keeps the old key's lifetime, counted from now.
	var expiresAt *time.Time
	if old.ExpiresAt != nil {
		t := now.Add(old.ExpiresAt.Sub(old.CreatedAt))
		expiresAt = &t
	}
	// ... shortened to what the owner's policy allows now (a refresh
	// asks for no expiry, so there is nothing to refuse).
	latest, err := s.latestExpiry(ctx, tx, old.OwnerID, now)
	if err != nil {
		return r, err
	}
	if latest != nil && (expiresAt == nil || expiresAt.After(*latest)) {
		expiresAt = latest
	}
	autoRotate := old.AutoRotateBefore
	if in.AutoRotateBefore != nil {
		autoRotate = *in.AutoRotateBefore
	}
	if a.principal == nil {
		var capped bool
		if expiresAt, capped, err = s.capByParents(ctx, tx, old.ID, expiresAt); err != nil {
			return r, err
		}
		if capped { // it cannot live longer than its parent: rotating it again gains nothing
			autoRotate = 0
		}
	}
	expiresAt = a.capExpiry(expiresAt)
	if err := checkAutoRotate(autoRotate, now, expiresAt); err != nil {
		if a.principal != nil {
			return r, err
		}
		// The system's own rotation, shortened (an owner's policy, a
		// parent): the key just stops rotating, rather than failing the
		// sweep of every other key.
		autoRotate = 0
	}
	// The stored names are copied verbatim, so that the replacement of a
	// key carrying a product scope removed from PRODUCT_SCOPES carries
	// it too: it matches again if the operator restores it.
	// The replacement keeps the old key's controls: a rotation changes
	// the secret, not where or for what the key may be used.
	r.out.New, err = s.insertKey(ctx, tx, a, keyRow{OwnerID: old.OwnerID, UserID: old.UserID, Name: name, Scopes: oldRow.Scopes,
		ExpiresAt: expiresAt, Metadata: oldRow.Metadata, AllowedCidrs: oldRow.AllowedCidrs, LineageID: old.LineageID, AutoRotateBefore: autoRotate})
	if err != nil {
		return r, err
	}
	var retireAt *time.Time
	if in.Grace > 0 {
		// A predecessor never outlives its successor.
		t := now.Add(in.Grace)
		if exp := r.out.New.Key.ExpiresAt; exp != nil && exp.Before(t) {
			t = *exp
		}
		retireAt = &t
	}
	oldRow, err = s.q.ReplaceKey(ctx, tx, dbgen.ReplaceKeyParams{
		ReplacedBy: uuid.NullUUID{UUID: r.out.New.Key.ID, Valid: true},
		RetireAt:   retireAt,
		RevokedAt:  a.at,
		ID:         old.ID,
		OwnerID:    old.OwnerID,
	})
	if err != nil {
		return r, fmt.Errorf("replace key: %w", err)
	}
	r.out.Old = s.keyFromRow(oldRow)
	if err := s.passParents(ctx, tx, a.principal, old, r.out.New.Key, handedOver); err != nil {
		return r, err
	}
	// With a grace period the old key is not ended but re-dated: its
	// change carries the grace's end, so that this process's sockets
	// close then even when the feed is down.
	r.keyChanges = append(r.keyChanges, changes.KeyChangeOf(r.out.Old, oldRow.KeyHash, now))
	details := map[string]any{
		"replaced_by":   r.out.New.Key.ID,
		"grace_seconds": int64(in.Grace / time.Second),
	}
	if in.Deliver {
		details["delivered_to_connections"] = len(recipients)
	}
	if a.principal == nil {
		details["reason"] = "auto_rotate"
	}
	refreshed, err := s.insertEvent(ctx, tx, a, r.out.Old, keyhub.EventRefreshed, meta, details)
	if err != nil {
		return r, err
	}
	created, err := s.insertEvent(ctx, tx, a, r.out.New.Key, keyhub.EventCreated, meta, map[string]any{
		"replaces": r.out.Old.ID,
	})
	if err != nil {
		return r, err
	}
	r.events = append(r.events, refreshed, created)
	if in.Deliver {
		if r.deliveries, err = s.sealForConnections(ctx, tx, a, recipients, r.out); err != nil {
			return r, err
		}
		r.out.DeliveredTo = len(r.deliveries)
	}
	return r, nil
}

// RevokeKey revokes a key of the principal's owner, and the key's
// predecessor if it is still in its grace period (a predecessor never
// outlives its successor). Revoking a key that is already revoked changes
// nothing and reports alreadyRevoked.
func (s *Store) RevokeKey(ctx context.Context, p *keyhub.Principal, keyID uuid.UUID, meta keyhub.RequestMeta) (key keyhub.Key, alreadyRevoked bool, err error) {
	var events []keyhub.Event
	var keyChanges []keyhub.KeyChange
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		key, alreadyRevoked, events, keyChanges = keyhub.Key{}, false, nil, nil // a retried transaction starts afresh
		a, _, target, err := s.lockChangeable(ctx, tx, p, keyID)
		if err != nil {
			return err
		}
		key = target
		if key.RevokedAt != nil {
			alreadyRevoked = true
		} else if key, keyChanges, events, err = s.revokeLocked(ctx, tx, a, key, meta, nil); err != nil {
			return err
		}
		return s.fillCreators(ctx, tx, p.OwnerID, &key)
	})
	if err != nil {
		return keyhub.Key{}, false, dbError(err, "key")
	}
	s.publish(keyChanges, events)
	return key, alreadyRevoked, nil
}

// passParents records, in the transaction of a refresh of old into
// successor, whom the successor can be obtained through: whatever old
// could, and the acting key when another key refreshed old (its holder got
// the secret). The children of the keys in handedOver (old, and the
// predecessor whose grace the refresh ended) pass to the successor: a
// refresh is not a revocation.
func (s *Store) passParents(ctx context.Context, tx pgx.Tx, p *keyhub.Principal, old, successor keyhub.Key, handedOver []uuid.UUID) error {
	// p is nil when the system rotated old on its own: no key acted.
	if err := s.q.InheritKeyParents(ctx, tx, dbgen.InheritKeyParentsParams{Successor: successor.ID, Predecessor: old.ID}); err != nil {
		return fmt.Errorf("inherit the parents of %s: %w", old.ID, err)
	}
	if p != nil && p.IsKey() && p.KeyID != old.ID {
		if err := s.q.AddKeyParent(ctx, tx, dbgen.AddKeyParentParams{KeyID: successor.ID, ParentID: p.KeyID, OwnerID: successor.OwnerID}); err != nil {
			return fmt.Errorf("record the refresher of %s: %w", old.ID, err)
		}
	}
	if err := s.q.PassKeyChildren(ctx, tx, dbgen.PassKeyChildrenParams{Successor: successor.ID, Predecessors: handedOver}); err != nil {
		return fmt.Errorf("pass the children of %s: %w", old.ID, err)
	}
	return nil
}

// revokeLocked revokes key, whose row the transaction holds, with a's
// stamp and a "revoked" event (with details), then the predecessor in its
// grace period and every key obtained through either, transitively.
func (s *Store) revokeLocked(ctx context.Context, tx pgx.Tx, a actor, key keyhub.Key, meta keyhub.RequestMeta, details map[string]any) (keyhub.Key, []keyhub.KeyChange, []keyhub.Event, error) {
	row, err := s.q.RevokeKey(ctx, tx, dbgen.RevokeKeyParams{ID: key.ID, OwnerID: key.OwnerID, RevokedAt: &a.at})
	if err != nil {
		return keyhub.Key{}, nil, nil, err
	}
	key = s.keyFromRow(row)
	keyChanges := []keyhub.KeyChange{changes.KeyChangeOf(key, row.KeyHash, a.at)}
	event, err := s.insertEvent(ctx, tx, a, key, keyhub.EventRevoked, meta, details)
	if err != nil {
		return keyhub.Key{}, nil, nil, err
	}
	events := []keyhub.Event{event}
	roots := []uuid.UUID{key.ID}
	change, ended, err := s.endGrace(ctx, tx, a, key, meta, "successor_revoked")
	if err != nil {
		return keyhub.Key{}, nil, nil, err
	}
	if ended != nil {
		keyChanges, events = append(keyChanges, *change), append(events, *ended)
		roots = append(roots, change.KeyID)
	}
	moreChanges, moreEvents, err := s.revokeDescendants(ctx, tx, a, key.ID, roots, meta)
	return key, append(keyChanges, moreChanges...), append(events, moreEvents...), err
}

// revokeDescendants revokes, with a's stamp, every usable key obtained
// (transitively) through one of roots, then the grace-period predecessor
// of each with whatever was obtained through that one, until nothing is
// left: a "revoked" event each, naming the parent it was obtained through
// and cause, the key whose revocation was asked for.
func (s *Store) revokeDescendants(ctx context.Context, tx pgx.Tx, a actor, cause uuid.UUID, roots []uuid.UUID, meta keyhub.RequestMeta) ([]keyhub.KeyChange, []keyhub.Event, error) {
	var keyChanges []keyhub.KeyChange
	var events []keyhub.Event
	for len(roots) > 0 {
		rows, err := s.q.RevokeDescendants(ctx, tx, dbgen.RevokeDescendantsParams{Roots: roots, RevokedAt: a.at})
		if err != nil {
			return nil, nil, fmt.Errorf("revoke the keys obtained through %s: %w", cause, err)
		}
		roots = nil
		for _, row := range rows {
			key := s.keyFromRow(row.ApiKey)
			keyChanges = append(keyChanges, changes.KeyChangeOf(key, row.ApiKey.KeyHash, a.at))
			event, err := s.insertEvent(ctx, tx, a, key, keyhub.EventRevoked, meta, map[string]any{
				"reason": "parent_revoked",
				"parent": row.ParentID,
				"cause":  cause,
			})
			if err != nil {
				return nil, nil, err
			}
			events = append(events, event)
			change, ended, err := s.endGrace(ctx, tx, a, key, meta, "successor_revoked")
			if err != nil {
				return nil, nil, err
			}
			if ended != nil {
				keyChanges, events = append(keyChanges, *change), append(events, *ended)
				roots = append(roots, change.KeyID)
			}
		}
	}
	return keyChanges, events, nil
}

// endGrace revokes the predecessor of successor (the key it replaced)
// while that still works, with a "revoked" event naming the reason and the
// successor. It returns nils when there is none.
func (s *Store) endGrace(ctx context.Context, tx pgx.Tx, a actor, successor keyhub.Key, meta keyhub.RequestMeta, reason string) (*keyhub.KeyChange, *keyhub.Event, error) {
	row, err := s.q.GetPredecessorInGraceForUpdate(ctx, tx, dbgen.GetPredecessorInGraceForUpdateParams{ID: successor.ID, OwnerID: successor.OwnerID})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("find predecessor of %s: %w", successor.ID, err)
	}
	predID := row.ID
	row, err = s.q.RevokeKey(ctx, tx, dbgen.RevokeKeyParams{ID: predID, OwnerID: row.OwnerID, RevokedAt: &a.at})
	if err != nil {
		return nil, nil, fmt.Errorf("end grace of %s: %w", predID, err)
	}
	pred := s.keyFromRow(row)
	event, err := s.insertEvent(ctx, tx, a, pred, keyhub.EventRevoked, meta, map[string]any{
		"reason":    reason,
		"successor": successor.ID,
	})
	if err != nil {
		return nil, nil, err
	}
	change := changes.KeyChangeOf(pred, row.KeyHash, time.Now())
	return &change, &event, nil
}

// GetKey returns a key of the owner; another owner's key is NOT_FOUND,
// exactly like a missing one.
func (s *Store) GetKey(ctx context.Context, ownerID, keyID uuid.UUID) (keyhub.Key, error) {
	row, err := s.q.GetKey(ctx, s.pool, dbgen.GetKeyParams{ID: keyID, OwnerID: ownerID})
	if err != nil {
		return keyhub.Key{}, dbError(err, "key")
	}
	key := s.keyFromRow(row)
	if err := s.fillCreators(ctx, s.pool, ownerID, &key); err != nil {
		return keyhub.Key{}, dbError(err, "key")
	}
	return key, nil
}

// ActiveKeyOfUser returns the user's newest active key: the single-key
// (seed) API's notion of "the" key.
func (s *Store) ActiveKeyOfUser(ctx context.Context, p *keyhub.Principal) (keyhub.Key, error) {
	row, err := s.q.GetActiveKeyOfUser(ctx, s.pool, dbgen.GetActiveKeyOfUserParams{OwnerID: p.OwnerID, UserID: p.UserID})
	if err != nil {
		return keyhub.Key{}, dbError(err, "active API key")
	}
	return s.keyFromRow(row), nil
}

// ListKeys returns a page of the owner's keys, newest first, each with the
// status the database computed for it (the one its filter used).
func (s *Store) ListKeys(ctx context.Context, ownerID uuid.UUID, f keyhub.KeyFilter, page keyhub.Page) ([]keyhub.Key, string, error) {
	var after keyCursor
	if err := decodeCursor(page.Cursor, &after); err != nil {
		return nil, "", err
	}
	params := dbgen.ListKeysParams{OwnerID: ownerID, MaxRows: int32(page.Size() + 1)}
	if f.Status != "" {
		status := string(f.Status)
		params.Status = &status
	}
	if page.Cursor != "" {
		params.AfterCreatedAt = &after.CreatedAt
		params.AfterID = uuid.NullUUID{UUID: after.ID, Valid: true}
	}
	rows, err := s.q.ListKeys(ctx, s.pool, params)
	if err != nil {
		return nil, "", dbError(err, "keys")
	}
	keys := make([]keyhub.Key, 0, len(rows))
	for _, r := range rows {
		keys = append(keys, s.keyFromListed(r))
	}
	var next string
	if len(keys) > page.Size() {
		keys = keys[:page.Size()]
		last := keys[len(keys)-1]
		next = encodeCursor(keyCursor{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	return keys, next, nil
}

// KeyForAuth looks a key up by the hex SHA-256 of its secret, whatever its
// status: the caller tells revoked and expired keys apart from unknown ones.
func (s *Store) KeyForAuth(ctx context.Context, keyHashHex string) (keyhub.AuthKey, error) {
	row, err := s.q.GetKeyForAuth(ctx, s.pool, keyHashHex)
	if err != nil {
		return keyhub.AuthKey{}, dbError(err, "key")
	}
	p := keyhub.Principal{
		UserID:      row.UserID,
		OwnerID:     row.OwnerID,
		Tier:        keyhub.Tier(row.Tier),
		Email:       row.Email,
		Method:      keyhub.AuthAPIKey,
		KeyID:       row.ID,
		LineageID:   row.LineageID,
		KeyPrefix:   row.KeyPrefix,
		KeyName:     row.Name,
		Scopes:      s.scopes.FromStored(row.Scopes),
		AllowedNets: row.AllowedCidrs,
	}
	if len(p.AllowedNets) == 0 {
		p.AllowedNets = nil // the hot path tests the length only
	}
	if row.ExpiresAt != nil {
		p.ExpiresAt = *row.ExpiresAt
	}
	return keyhub.AuthKey{Principal: p, RevokedAt: row.RevokedAt, Disabled: row.Disabled}, nil
}

// TouchKeys records when keys were last used (ids[i] at usedAt[i], from
// from[i]: its address and agent, stored as the audit trail stores them),
// in one statement that never waits for a row lock: it returns the ids
// whose rows another transaction held, for the caller's next flush.
func (s *Store) TouchKeys(ctx context.Context, ids []uuid.UUID, usedAt []time.Time, from []keyhub.RequestMeta) ([]uuid.UUID, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if len(from) != len(ids) || len(usedAt) != len(ids) {
		return nil, fmt.Errorf("touch keys: %d ids, %d times, %d origins", len(ids), len(usedAt), len(from))
	}
	ips := make([]netip.Addr, len(from))
	agents := make([]string, len(from))
	for i, f := range from {
		ips[i] = storableAddr(f.IP)
		agents[i] = storableText(f.UserAgent, maxUserAgent)
	}
	skipped, err := s.q.TouchKeys(ctx, s.pool, dbgen.TouchKeysParams{Ids: ids, UsedAts: usedAt, Ips: ips, UserAgents: agents})
	if err != nil {
		return nil, fmt.Errorf("touch keys: %w", err)
	}
	return skipped, nil
}

// keyFromRow converts a key row; stored scope names the catalog does not
// know (a product scope removed from PRODUCT_SCOPES) are left out.
func (s *Store) keyFromRow(r dbgen.ApiKey) keyhub.Key {
	return s.keyFromListed(dbgen.ListKeysRow{
		ID: r.ID, OwnerID: r.OwnerID, UserID: r.UserID, Name: r.Name, KeyPrefix: r.KeyPrefix, Scopes: r.Scopes,
		ExpiresAt: r.ExpiresAt, LastUsedAt: r.LastUsedAt, CreatedAt: r.CreatedAt, RevokedAt: r.RevokedAt,
		ReplacedBy: r.ReplacedBy, LineageID: r.LineageID, AutoRotateBeforeSeconds: r.AutoRotateBeforeSeconds,
		Metadata: r.Metadata, AllowedCidrs: r.AllowedCidrs, DisabledAt: r.DisabledAt,
		LastUsedIp: r.LastUsedIp, LastUsedUserAgent: r.LastUsedUserAgent,
	})
}

// keyFromListed converts a listed key row (no key_hash, the status as the
// database computed it; empty from keyFromRow).
func (s *Store) keyFromListed(r dbgen.ListKeysRow) keyhub.Key {
	k := keyhub.Key{
		ID:           r.ID,
		OwnerID:      r.OwnerID,
		UserID:       r.UserID,
		Name:         r.Name,
		Prefix:       r.KeyPrefix,
		Scopes:       s.scopes.FromStored(r.Scopes),
		CreatedAt:    r.CreatedAt,
		ExpiresAt:    r.ExpiresAt,
		LastUsedAt:   r.LastUsedAt,
		RevokedAt:    r.RevokedAt,
		LastUsedFrom: keyhub.RequestMeta{IP: r.LastUsedIp},
		LineageID:    r.LineageID,
		// The row says only whether the key itself is disabled; writers
		// that change what its ancestry does set Disabled from it.
		Metadata:     r.Metadata,
		AllowedCIDRs: r.AllowedCidrs,
		DisabledAt:   r.DisabledAt,
		Disabled:     r.DisabledAt != nil,
		Status:       keyhub.KeyStatus(r.Status),
		CreatedBy:    keyCreator(r.CreatorUserID, r.CreatorEmail, r.CreatorKeyID, r.CreatorKeyPrefix),
	}
	if r.ReplacedBy.Valid {
		id := r.ReplacedBy.UUID
		k.ReplacedBy = &id
	}
	if r.AutoRotateBeforeSeconds != nil {
		k.AutoRotateBefore = time.Duration(*r.AutoRotateBeforeSeconds) * time.Second
	}
	if r.LastUsedUserAgent != nil {
		k.LastUsedFrom.UserAgent = *r.LastUsedUserAgent
	}
	return k
}

// RecordConnectionClosed writes the connection_closed event of keyID,
// whose WebSocket connection p is closing. The acting credential is
// re-checked like any write's.
func (s *Store) RecordConnectionClosed(ctx context.Context, p *keyhub.Principal, keyID, connectionID uuid.UUID, meta keyhub.RequestMeta) error {
	var event keyhub.Event
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		a, row, err := s.lockTarget(ctx, tx, p, keyID)
		if err != nil {
			return err
		}
		event, err = s.insertEvent(ctx, tx, a, s.keyFromRow(row), keyhub.EventConnectionClosed, meta, map[string]any{"connection_id": connectionID})
		return err
	})
	if err != nil {
		return dbError(err, "key")
	}
	s.publish(nil, []keyhub.Event{event})
	return nil
}

// maxUserAgent is the longest user agent the audit trail (and a key's
// last use) keeps, in characters, as the columns' CHECKs count them.
const maxUserAgent = 512

// storableAddr is a client address as inet stores it: an IPv4 address
// seen over IPv6 (::ffff:a.b.c.d) as IPv4, without a zone (inet has
// none); the zero Addr (unknown) is stored as NULL.
func storableAddr(ip netip.Addr) netip.Addr { return ip.Unmap().WithZone("") }

// insertEvent writes an event of key done by a (its principal is the
// actor), stamped with a's stamp.
func (s *Store) insertEvent(ctx context.Context, tx pgx.Tx, a actor, key keyhub.Key, typ keyhub.EventType, meta keyhub.RequestMeta, details map[string]any) (keyhub.Event, error) {
	params := dbgen.InsertEventParams{
		ApiKeyID:  key.ID,
		OwnerID:   key.OwnerID,
		EventType: string(typ),
		CreatedAt: a.at,
	}
	if p := a.principal; p != nil {
		params.ActorUserID = uuid.NullUUID{UUID: p.UserID, Valid: true}
		if p.IsKey() {
			params.ActorKeyID = uuid.NullUUID{UUID: p.KeyID, Valid: true}
		}
	}
	params.IpAddress = storableAddr(meta.IP)
	// A header is whatever bytes the client sent: PostgreSQL refuses NUL and
	// invalid UTF-8 in text, and would fail the whole write with them.
	if ua := storableText(meta.UserAgent, maxUserAgent); ua != "" {
		params.UserAgent = &ua
	}
	if details != nil {
		raw, err := json.Marshal(details)
		if err != nil {
			return keyhub.Event{}, err
		}
		params.Details = pqtype.NullRawMessage{RawMessage: raw, Valid: true}
	}
	row, err := s.q.InsertEvent(ctx, tx, params)
	if err != nil {
		return keyhub.Event{}, fmt.Errorf("insert %s event: %w", typ, err)
	}
	// The actor acts for this owner: its email is what a read's join finds.
	var actorEmail *string
	if a.principal != nil && a.principal.Email != "" {
		actorEmail = &a.principal.Email
	}
	return eventFromRow(row, actorEmail), nil
}
