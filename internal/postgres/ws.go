package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

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

// KeyForAuthByID looks a key up by id, whatever its status, as KeyForAuth
// does by hash: a WebSocket ticket names its key by id and must see the
// key as it is now (revoked, expired, re-scoped, tier changed). Two
// indexed lookups, once per connection, keep one row-to-principal path.
func (s *Store) KeyForAuthByID(ctx context.Context, keyID uuid.UUID) (keyhub.AuthKey, error) {
	keyHash, err := s.q.GetKeyHashByID(ctx, s.pool, keyID)
	if err != nil {
		return keyhub.AuthKey{}, dbError(err, "key")
	}
	return s.KeyForAuth(ctx, keyHash)
}
