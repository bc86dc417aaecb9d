package postgres

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keyhub/keyhub/internal/dbgen"
)

// expiryLookBack is how far back the sweeper looks for expired keys. A key
// that expired while no keyhub process ran for longer than this gets no
// `expired` event; the window keeps each sweep's work bounded however many
// keys have expired over the years.
const expiryLookBack = 7 * 24 * time.Hour

// expirySweepBatch bounds one sweep; a backlog is worked off over sweeps.
const expirySweepBatch = 1000

// RecordExpiredKeys writes an `expired` audit event for each key whose
// expiry passed, once. One process sweeps at a time (an advisory lock);
// the others skip their turn. The events reach live subscribers through
// the change feed like any other.
func (s *Store) RecordExpiredKeys(ctx context.Context) (int64, error) {
	var written int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		locked, err := s.q.TryLockExpirySweep(ctx, tx)
		if err != nil || !locked {
			return err
		}
		written, err = s.q.RecordExpiredKeys(ctx, tx, dbgen.RecordExpiredKeysParams{
			LookBackSeconds: expiryLookBack.Seconds(), MaxRows: expirySweepBatch,
		})
		return err
	})
	if err != nil {
		return 0, dbError(err, "expired keys")
	}
	return written, nil
}

// RunExpirySweeper records expired keys every interval until ctx ends.
func (s *Store) RunExpirySweeper(ctx context.Context, interval time.Duration, log *slog.Logger) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, err := s.RecordExpiredKeys(ctx); err != nil && ctx.Err() == nil {
				log.Warn("expiry sweep", "err", err)
			}
		}
	}
}
