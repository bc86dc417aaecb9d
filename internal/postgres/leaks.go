package postgres

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keyhub/keyhub/internal/dbgen"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// Store records reported leaks.
var _ keyhub.LeakRecorder = (*Store)(nil)

// RecordLeak records that the key with leak.KeyHash was found in public:
// a `leaked` event (no actor: the system writes it) with where, and, when
// the owner's leak policy is to revoke and the key still works, its
// revocation with everything obtained through it, by the revoke path of
// DELETE /v1/keys/{id} (sockets close on every process through the
// change feed). A key already revoked or expired gets the event only.
// A hash no key has is not known: nothing is written.
func (s *Store) RecordLeak(ctx context.Context, leak keyhub.Leak) (keyhub.LeakOutcome, error) {
	var out keyhub.LeakOutcome
	var keyChanges []keyhub.KeyChange
	var events []keyhub.Event
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		out, keyChanges, events = keyhub.LeakOutcome{}, nil, nil // a retried transaction starts afresh
		row, err := s.q.GetKeyByHash(ctx, tx, leak.KeyHash)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		// The locks of a revoke, in its order: the owner's writes, the
		// key's user, the key's row.
		at, err := s.q.LockOwnerWrites(ctx, tx, row.OwnerID)
		if err != nil {
			return err
		}
		if _, err := s.q.LockUsersForKeys(ctx, tx, []uuid.UUID{row.UserID}); err != nil {
			return err
		}
		if row, err = s.q.GetKeyForUpdate(ctx, tx, dbgen.GetKeyForUpdateParams{ID: row.ID, OwnerID: row.OwnerID}); err != nil {
			return err
		}
		policy, err := s.q.GetOwnerPolicy(ctx, tx, row.OwnerID)
		if err != nil {
			return err
		}
		a := actor{at: at} // the system
		key := s.keyFromRow(row)
		out = keyhub.LeakOutcome{Known: true, KeyID: key.ID}
		action := "none" // revoked or expired already
		if key.StatusAt(at) == keyhub.KeyActive {
			action = "notified"
			if ownerPolicyOf(nil, policy.LeakPolicy).RevokesLeakedKeys() {
				action = "revoked"
			}
		}
		event, err := s.insertEvent(ctx, tx, a, key, keyhub.EventLeaked, keyhub.RequestMeta{}, map[string]any{
			"url": leak.URL, "source": leak.Source, "token_type": leak.Type, "action": action,
		})
		if err != nil {
			return err
		}
		events = append(events, event)
		if action != "revoked" {
			return nil
		}
		var more []keyhub.Event
		_, keyChanges, more, err = s.revokeLocked(ctx, tx, a, key, keyhub.RequestMeta{}, map[string]any{"reason": "leaked"})
		events = append(events, more...)
		out.Revoked = err == nil
		return err
	})
	if err != nil {
		return keyhub.LeakOutcome{}, dbError(err, "leaked key")
	}
	s.publish(keyChanges, events)
	return out, nil
}
