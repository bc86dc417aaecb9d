package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keyhub/keyhub/internal/changes"
	"github.com/keyhub/keyhub/internal/dbgen"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// ClaimWSTicket marks a WebSocket ticket as used. It reports false when the
// ticket was claimed before: the primary key makes a replay lose the race
// even when two processes verify the same ticket at once.
func (s *Store) ClaimWSTicket(ctx context.Context, ticketID uuid.UUID, expiresAt time.Time) (bool, error) {
	n, err := s.q.ClaimWSTicket(ctx, s.pool, dbgen.ClaimWSTicketParams{ID: ticketID, ExpiresAt: expiresAt})
	if err != nil {
		return false, dbError(err, "ws ticket")
	}
	return n == 1, nil
}

// DeleteExpiredWSTickets forgets tickets that can no longer be presented.
func (s *Store) DeleteExpiredWSTickets(ctx context.Context) (int64, error) {
	n, err := s.q.DeleteExpiredWSTickets(ctx, s.pool)
	if err != nil {
		return 0, fmt.Errorf("delete expired ws tickets: %w", err)
	}
	return n, nil
}

// KeyHashByID returns the stored hash of a key, whatever its status: a
// WebSocket ticket names its key by id, and the hash leads to the same
// cache and verification as a presented key.
func (s *Store) KeyHashByID(ctx context.Context, keyID uuid.UUID) (string, error) {
	keyHash, err := s.q.GetKeyHashByID(ctx, s.pool, keyID)
	if err != nil {
		return "", dbError(err, "key")
	}
	return keyHash, nil
}

// KeyStates returns the current state of the keys with the given ids as
// key changes (revoked or expired keys are Ended), for connections that
// must re-check their keys after the change feed was down.
func (s *Store) KeyStates(ctx context.Context, keyIDs []uuid.UUID) ([]keyhub.KeyChange, error) {
	rows, err := s.q.KeyStates(ctx, s.pool, keyIDs)
	if err != nil {
		return nil, dbError(err, "key states")
	}
	now := time.Now()
	states := make([]keyhub.KeyChange, 0, len(rows))
	for _, r := range rows {
		key := keyhub.Key{ID: r.ID, OwnerID: r.OwnerID, UserID: r.UserID, RevokedAt: r.RevokedAt, ExpiresAt: r.ExpiresAt, Disabled: r.Disabled, AllowedCIDRs: r.AllowedCidrs, Scopes: s.scopes.FromStored(r.Scopes)}
		states = append(states, changes.KeyChangeOf(key, r.KeyHash, now))
	}
	return states, nil
}

// OwnerTiers returns the current tier of each given owner.
func (s *Store) OwnerTiers(ctx context.Context, ownerIDs []uuid.UUID) (map[uuid.UUID]keyhub.Tier, error) {
	rows, err := s.q.OwnerTiers(ctx, s.pool, ownerIDs)
	if err != nil {
		return nil, dbError(err, "owner tiers")
	}
	tiers := make(map[uuid.UUID]keyhub.Tier, len(rows))
	for _, r := range rows {
		tiers[r.ID] = keyhub.Tier(r.Tier)
	}
	return tiers, nil
}

// AcquireWSLease admits a WebSocket connection to a slot (a key, or a user
// for JWT connections) unless limit live leases of that slot exist on any
// process. The advisory lock serialises admissions to the slot across
// processes, so concurrent attempts cannot exceed the limit. handoverKey
// is the connection's public key for rotated secrets (nil: it takes none).
// It returns when the lease was taken (the database's clock).
func (s *Store) AcquireWSLease(ctx context.Context, id, slotID, ownerID, processID uuid.UUID, limit int, ttl time.Duration, handoverKey []byte) (openedAt time.Time, admitted bool, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := s.q.LockWSSlot(ctx, tx, slotID.String()); err != nil {
			return err
		}
		live, err := s.q.CountWSLeases(ctx, tx, slotID)
		if err != nil {
			return err
		}
		if live >= int64(limit) {
			return nil
		}
		openedAt, err = s.q.InsertWSLease(ctx, tx, dbgen.InsertWSLeaseParams{
			ID: id, SlotID: slotID, OwnerID: ownerID, ProcessID: processID, TtlSeconds: ttl.Seconds(), HandoverKey: handoverKey,
		})
		admitted = err == nil
		return err
	})
	if err != nil {
		return time.Time{}, false, dbError(err, "websocket lease")
	}
	return openedAt, admitted, nil
}

// ReleaseWSLease ends a connection's lease.
func (s *Store) ReleaseWSLease(ctx context.Context, id uuid.UUID) error {
	if err := s.q.DeleteWSLease(ctx, s.pool, id); err != nil {
		return dbError(err, "websocket lease")
	}
	return nil
}

// RenewWSLeases extends the given leases of a process by ttl from now, and
// writes back those that expired (and were swept) while the process could
// not renew them: their connections are still open and must count. It
// returns the leases that rank past their slot's cap among every
// process's (oldest first): after a partition longer than the lease, or a
// lowered tier, a slot can hold more than its cap, and each process closes
// its own newest over it.
func (s *Store) RenewWSLeases(ctx context.Context, processID uuid.UUID, ttl time.Duration, leases []keyhub.WSLease) (overCap []uuid.UUID, err error) {
	ids := make([]uuid.UUID, len(leases))
	slotIDs := make([]uuid.UUID, len(leases))
	ownerIDs := make([]uuid.UUID, len(leases))
	openedAts := make([]time.Time, len(leases))
	caps := make([]int32, len(leases))
	handoverKeys := make([][]byte, len(leases))
	for i, l := range leases {
		ids[i], slotIDs[i], ownerIDs[i], openedAts[i], caps[i] = l.ID, l.SlotID, l.OwnerID, l.OpenedAt, int32(l.Cap)
		handoverKeys[i] = l.HandoverKey
	}
	params := dbgen.RenewWSLeasesParams{Ids: ids, SlotIds: slotIDs, OwnerIds: ownerIDs, ProcessID: processID, CreatedAts: openedAts, TtlSeconds: ttl.Seconds(), HandoverKeys: handoverKeys}
	if _, err := s.q.RenewWSLeases(ctx, s.pool, params); err != nil {
		return nil, dbError(err, "websocket leases")
	}
	overCap, err = s.q.WSLeasesOverCap(ctx, s.pool, dbgen.WSLeasesOverCapParams{Ids: ids, Caps: caps, SlotIds: slotIDs})
	if err != nil {
		return nil, dbError(err, "websocket leases")
	}
	return overCap, nil
}

// DeleteExpiredWSLeases forgets the leases of processes that died.
func (s *Store) DeleteExpiredWSLeases(ctx context.Context) (int64, error) {
	n, err := s.q.DeleteExpiredWSLeases(ctx, s.pool)
	if err != nil {
		return 0, dbError(err, "websocket leases")
	}
	return n, nil
}
