package postgres

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
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
		expired, err := s.q.ExpiredKeysToRecord(ctx, tx, dbgen.ExpiredKeysToRecordParams{
			LookBackSeconds: expiryLookBack.Seconds(), MaxRows: expirySweepBatch,
		})
		if err != nil || len(expired) == 0 {
			return err
		}
		// Their owners' write locks, in id order and before any row lock
		// (a key write takes one owner's lock first too, so neither waits
		// for the other in a cycle): the events are stamped in commit
		// order with the owners' key writes.
		ids := make([]uuid.UUID, 0, len(expired))
		owners := make([]uuid.UUID, 0, len(expired))
		for _, k := range expired {
			ids, owners = append(ids, k.ID), append(owners, k.OwnerID)
		}
		slices.SortFunc(owners, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
		var stamp time.Time
		for _, owner := range slices.Compact(owners) {
			if stamp, err = s.q.LockOwnerWrites(ctx, tx, owner); err != nil {
				return err
			}
		}
		written, err = s.q.RecordExpiredKeys(ctx, tx, dbgen.RecordExpiredKeysParams{Stamp: stamp, Ids: ids})
		return err
	})
	if err != nil {
		return 0, dbError(err, "expired keys")
	}
	return written, nil
}

// RunExpirySweeper records expired keys, rotates the keys due for
// zero-touch rotation (RotateDueKeys) and prunes key usage older than its
// retention, every interval until ctx ends.
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
			// Zero-touch rotation: a step of its own, with its own lock.
			if _, err := s.RotateDueKeys(ctx); err != nil && ctx.Err() == nil {
				log.Warn("auto-rotation sweep", "err", err)
			}
			if _, err := s.PruneKeyUsage(ctx, time.Now()); err != nil && ctx.Err() == nil {
				log.Warn("key usage retention sweep", "err", err)
			}
		}
	}
}
