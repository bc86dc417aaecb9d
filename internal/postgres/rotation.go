package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keyhub/keyhub/internal/dbgen"
	"github.com/keyhub/keyhub/internal/handover"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// Zero-touch rotation: a refresh whose new secret goes to the old key's
// open connections instead of to the caller, and the sweep that does it on
// its own for keys marked auto_rotate_before.
//
// Why the secret is sealed rather than handed over in process: the socket
// may be held by another replica than the one serving the refresh, and
// the only thing replicas share is PostgreSQL. So each connection that can
// receive a secret publishes an X25519 public key with its lease; the
// refresh seals the secret to it (package handover) and sends only the
// sealed bytes, as a NOTIFY inside its transaction (delivered at commit,
// never after a rollback). The process holding the socket opens it with the
// private key that never left its memory. Neither a table, a notice nor a
// log line ever holds the secret itself.

// handoverRecipients lists the live connections of keyID that can receive
// a secret, refusing with NO_OPEN_CONNECTIONS when there is none: the
// secret would then be shown to nobody and the key lost.
func (s *Store) handoverRecipients(ctx context.Context, tx pgx.Tx, keyID uuid.UUID) ([]dbgen.HandoverConnectionsRow, error) {
	recipients, err := s.q.HandoverConnections(ctx, tx, keyID)
	if err != nil {
		return nil, fmt.Errorf("connections of key %s: %w", keyID, err)
	}
	if len(recipients) == 0 {
		return nil, keyhub.Errorf(keyhub.CodeNoOpenConnections, "this key has no open WebSocket connection to deliver the new key to; refresh without deliver to receive it yourself")
	}
	return recipients, nil
}

// sealForConnections seals the new secret of out, refreshed by a, to each
// recipient and sends each sealed copy on the change feed, inside tx.
func (s *Store) sealForConnections(ctx context.Context, tx pgx.Tx, a actor, recipients []dbgen.HandoverConnectionsRow, out keyhub.Refreshed) ([]keyhub.KeyDelivery, error) {
	graceUntil := out.Old.CreatedAt
	if out.Old.ExpiresAt != nil {
		graceUntil = *out.Old.ExpiresAt
	}
	var actorUser, actorKey uuid.UUID // as insertEvent records them
	if p := a.principal; p != nil {
		actorUser = p.UserID
		if p.IsKey() {
			actorKey = p.KeyID
		}
	}
	deliveries := make([]keyhub.KeyDelivery, 0, len(recipients))
	for _, rc := range recipients {
		sealed, err := handover.Seal(rc.HandoverKey, rc.ID, out.New.Key.ID, out.New.Secret)
		if err != nil {
			return nil, err
		}
		d := keyhub.KeyDelivery{
			ConnectionID: rc.ID, OwnerID: out.Old.OwnerID, OldKeyID: out.Old.ID, NewKeyID: out.New.Key.ID,
			GraceUntil: graceUntil, Sealed: sealed, ActorUserID: actorUser, ActorKeyID: actorKey,
		}
		if err := s.q.NotifyChange(ctx, tx, deliveryNotice(d, time.Now())); err != nil {
			return nil, fmt.Errorf("announce the delivery to connection %s: %w", rc.ID, err)
		}
		deliveries = append(deliveries, d)
	}
	return deliveries, nil
}

// deliveryNotice is the change-feed payload of a delivery.
func deliveryNotice(d keyhub.KeyDelivery, now time.Time) string {
	grace := float64(d.GraceUntil.UnixMicro()) / 1e6
	raw, _ := json.Marshal(Notice{ // a struct of plain fields always encodes
		Kind: NoticeDelivery, ConnectionID: d.ConnectionID, OwnerID: d.OwnerID, KeyID: d.OldKeyID,
		NewKeyID: d.NewKeyID, ExpiresAt: &grace, Sealed: d.Sealed, SentAt: float64(now.UnixMicro()) / 1e6,
		ActorUserID: d.ActorUserID, ActorKeyID: d.ActorKeyID,
	})
	return string(raw)
}

// Delivery is the domain form of a delivery notice.
func (n Notice) Delivery() keyhub.KeyDelivery {
	d := keyhub.KeyDelivery{ConnectionID: n.ConnectionID, OwnerID: n.OwnerID, OldKeyID: n.KeyID, NewKeyID: n.NewKeyID, Sealed: n.Sealed,
		ActorUserID: n.ActorUserID, ActorKeyID: n.ActorKeyID}
	if n.ExpiresAt != nil {
		d.GraceUntil = unixSeconds(*n.ExpiresAt)
	}
	return d
}

// capByParents caps expiresAt at the earliest expiry of the keys oldID
// can be obtained through, and reports whether it did: a key the system
// rotates on its own never outlives one of them, as a key made by a key
// never outlives its maker.
func (s *Store) capByParents(ctx context.Context, tx pgx.Tx, oldID uuid.UUID, expiresAt *time.Time) (*time.Time, bool, error) {
	parentExpiry, err := s.q.EarliestParentExpiry(ctx, tx, oldID)
	if errors.Is(err, pgx.ErrNoRows) {
		return expiresAt, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("expiry of the parents of %s: %w", oldID, err)
	}
	if expiresAt != nil && !expiresAt.After(*parentExpiry) {
		return expiresAt, false, nil
	}
	return parentExpiry, true, nil
}

// checkAutoRotate refuses an auto_rotate_before that cannot work: a key
// without an expiry is never due, and one due as soon as it exists would be
// rotated at every sweep.
func checkAutoRotate(before time.Duration, createdAt time.Time, expiresAt *time.Time) error {
	switch {
	case before <= 0:
		return nil
	case expiresAt == nil:
		return keyhub.Errorf(keyhub.CodeValidation, "auto_rotate_before needs a key that expires")
	case before >= expiresAt.Sub(createdAt):
		return keyhub.Errorf(keyhub.CodeValidation, "auto_rotate_before (%s) must be shorter than the key's lifetime (%s)", before, expiresAt.Sub(createdAt).Round(time.Second))
	}
	return nil
}

// autoRotateBatch bounds one rotation sweep; the rest wait for the next.
const autoRotateBatch = 100

// RotateDueKeys is the sweeper's auto-rotation step: every key marked
// auto_rotate_before whose time has come (that long before it expires) and
// that has at least one open connection able to receive a secret is
// refreshed by the system, the new secret sealed to those connections,
// and the old key keeps working until its own expiry (the grace). A key
// with no such connection is left alone (its owner gets the expiry
// warnings instead). One process sweeps at a time (an advisory lock); a
// key rotated meanwhile by its owner is skipped under its row lock.
func (s *Store) RotateDueKeys(ctx context.Context) (int, error) {
	var rotations []rotation
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rotations = nil // a retried transaction starts afresh
		locked, err := s.q.TryLockRotationSweep(ctx, tx)
		if err != nil || !locked {
			return err
		}
		due, err := s.q.KeysDueForRotation(ctx, tx, autoRotateBatch)
		if err != nil || len(due) == 0 {
			return err
		}
		// Owners' write locks first, as every key write takes them.
		owners := make([]uuid.UUID, 0, len(due))
		for _, k := range due {
			owners = append(owners, k.OwnerID)
		}
		stamp, err := s.lockOwners(ctx, tx, owners)
		if err != nil {
			return err
		}
		for _, k := range due {
			r, err := s.rotateDue(ctx, tx, stamp, k)
			if err != nil {
				return err
			}
			if r != nil {
				rotations = append(rotations, *r)
			}
		}
		return nil
	})
	if err != nil {
		return 0, dbError(err, "keys due for rotation")
	}
	for _, r := range rotations {
		r.publish(s)
	}
	return len(rotations), nil
}

// rotateDue rotates one due key under its user's and its own row lock, or
// returns nil when it is no longer due (refreshed, revoked, or its last
// connection gone since it was listed).
func (s *Store) rotateDue(ctx context.Context, tx pgx.Tx, stamp time.Time, k dbgen.KeysDueForRotationRow) (*rotation, error) {
	users, err := s.q.LockUsersForKeys(ctx, tx, []uuid.UUID{k.UserID})
	if err != nil || len(users) == 0 {
		return nil, err
	}
	row, err := s.q.GetKeyForUpdate(ctx, tx, dbgen.GetKeyForUpdateParams{ID: k.ID, OwnerID: k.OwnerID})
	if err != nil {
		return nil, err
	}
	old := s.keyFromRow(row)
	if old.ReplacedBy != nil || old.StatusAt(stamp) != keyhub.KeyActive || old.AutoRotateBefore <= 0 {
		return nil, nil
	}
	a := actor{scopes: s.scopes.All(), tiers: map[uuid.UUID]keyhub.Tier{k.UserID: keyhub.Tier(users[0].Tier)}, at: stamp}
	// The old key keeps working until it would have expired anyway.
	in := keyhub.RefreshInput{Deliver: true, Grace: old.ExpiresAt.Sub(stamp)}
	r, err := s.rotate(ctx, tx, a, row, in, keyhub.RequestMeta{})
	if keyhub.ErrorCode(err) == keyhub.CodeNoOpenConnections || errors.Is(err, errRefreshDisabled) {
		return nil, nil // nobody to deliver to, or paused: an expiring warning will do
	}
	if err != nil {
		return nil, fmt.Errorf("rotate key %s: %w", k.ID, err)
	}
	return &r, nil
}
