package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keyhub/keyhub/internal/dbgen"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// AddKeyUsage adds a batch of hourly counts (usage.Writer). The batch
// must be sorted by key and hour, each pair once: its rows are then
// locked in that order by every process, which wait for each other
// rather than deadlock.
func (s *Store) AddKeyUsage(ctx context.Context, counts []keyhub.UsageCount) error {
	if len(counts) == 0 {
		return nil
	}
	arg := dbgen.AddKeyUsageParams{
		KeyIds:      make([]uuid.UUID, len(counts)),
		Hours:       make([]time.Time, len(counts)),
		Oks:         make([]int64, len(counts)),
		Refused:     make([]int64, len(counts)),
		RateLimited: make([]int64, len(counts)),
	}
	for i, u := range counts {
		arg.KeyIds[i], arg.Hours[i] = u.KeyID, u.Hour
		arg.Oks[i] = u.Counts[keyhub.UsageOK]
		arg.Refused[i] = u.Counts[keyhub.UsageRefused]
		arg.RateLimited[i] = u.Counts[keyhub.UsageRateLimited]
	}
	if err := s.q.AddKeyUsage(ctx, s.pool, arg); err != nil {
		return fmt.Errorf("add key usage: %w", err)
	}
	return nil
}

// KeyUsage implements keyhub.UsageReader.
func (s *Store) KeyUsage(ctx context.Context, ownerID, keyID uuid.UUID, from, to time.Time) ([]keyhub.UsageCount, error) {
	// The key must be the owner's: another tenant's id is NOT_FOUND, not
	// an empty series that would confirm it exists somewhere.
	if _, err := s.q.GetKey(ctx, s.pool, dbgen.GetKeyParams{ID: keyID, OwnerID: ownerID}); err != nil {
		return nil, dbError(err, "key")
	}
	rows, err := s.q.KeyUsage(ctx, s.pool, dbgen.KeyUsageParams{KeyID: keyID, FromHour: from, ToHour: to})
	if err != nil {
		return nil, dbError(err, "key usage")
	}
	out := make([]keyhub.UsageCount, len(rows))
	for i, r := range rows {
		out[i] = keyhub.UsageCount{KeyID: keyID, Hour: r.Hour.UTC(), Counts: [keyhub.UsageOutcomes]int64{r.Ok, r.Refused, r.RateLimited}}
	}
	return out, nil
}

// PruneKeyUsage deletes the hours older than keyhub.UsageRetention before
// now. One process prunes at a time (an advisory lock); the others skip
// their turn.
func (s *Store) PruneKeyUsage(ctx context.Context, now time.Time) (int64, error) {
	var deleted int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		locked, err := s.q.TryLockUsagePrune(ctx, tx)
		if err != nil || !locked {
			return err
		}
		deleted, err = s.q.PruneKeyUsage(ctx, tx, now.Add(-keyhub.UsageRetention))
		return err
	})
	if err != nil {
		return 0, dbError(err, "key usage")
	}
	return deleted, nil
}

// Store reads key usage.
var _ keyhub.UsageReader = (*Store)(nil)
