package postgres

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keyhub/keyhub/internal/dbgen"
	"github.com/keyhub/keyhub/internal/keyhub"
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
		ids := make([]uuid.UUID, 0, len(expired))
		owners := make([]uuid.UUID, 0, len(expired))
		for _, k := range expired {
			ids, owners = append(ids, k.ID), append(owners, k.OwnerID)
		}
		stamp, err := s.lockOwners(ctx, tx, owners)
		if err != nil {
			return err
		}
		written, err = s.q.RecordExpiredKeys(ctx, tx, dbgen.RecordExpiredKeysParams{Stamp: stamp, Ids: ids})
		return err
	})
	if err != nil {
		return 0, dbError(err, "expired keys")
	}
	return written, nil
}

// lockOwners takes the write locks of the owners whose keys a sweep
// writes for, in id order and before any row lock (a key write takes one
// owner's lock first too, so neither waits for the other in a cycle), and
// returns the stamp of the last: the sweep's events are stamped in commit
// order with the owners' key writes.
func (s *Store) lockOwners(ctx context.Context, tx pgx.Tx, owners []uuid.UUID) (time.Time, error) {
	owners = slices.Clone(owners)
	slices.SortFunc(owners, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	var stamp time.Time
	for _, owner := range slices.Compact(owners) {
		var err error
		if stamp, err = s.q.LockOwnerWrites(ctx, tx, owner); err != nil {
			return time.Time{}, err
		}
	}
	return stamp, nil
}

// RecordExpiryWarnings is the sweep's expiry-warnings step at now (a
// parameter, so that tests sweep at any time): an `expiring` event
// (details: expires_at, window_seconds) for each key that has entered one
// of keyhub.ExpiryWarningWindows before its expiry and was not warned of
// it yet (KeysToWarnOfExpiry says which keys qualify). Every process runs
// it, and two may run it at once: the ledger api_key_expiry_warnings,
// written in the event's transaction under the owners' write locks, lets
// exactly one of them write each warning. The events reach webhooks (the
// outbox trigger), /v1/events, and every process's sockets (the change
// feed) like any other; the hub sends key_expiring to the key's own.
func (s *Store) RecordExpiryWarnings(ctx context.Context, now time.Time) (int, error) {
	windows := make([]int64, 0, len(keyhub.ExpiryWarningWindows))
	for _, w := range keyhub.ExpiryWarningWindows {
		windows = append(windows, int64(w/time.Second))
	}
	var written []keyhub.Event
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		written = nil // a retried transaction starts afresh
		due, err := s.q.KeysToWarnOfExpiry(ctx, tx, dbgen.KeysToWarnOfExpiryParams{
			Windows: windows, SweepAt: now, HorizonSeconds: keyhub.ExpiryWarningHorizon().Seconds(), MaxRows: expirySweepBatch,
		})
		if err != nil || len(due) == 0 {
			return err
		}
		arg := dbgen.RecordExpiryWarningsParams{
			Ids:     make([]uuid.UUID, 0, len(due)),
			Expires: make([]time.Time, 0, len(due)),
			Windows: make([]int64, 0, len(due)),
		}
		owners := make([]uuid.UUID, 0, len(due))
		for _, k := range due {
			arg.Ids, arg.Expires, arg.Windows = append(arg.Ids, k.ID), append(arg.Expires, k.ExpiresAt), append(arg.Windows, k.WindowSeconds)
			owners = append(owners, k.OwnerID)
		}
		if arg.Stamp, err = s.lockOwners(ctx, tx, owners); err != nil {
			return err
		}
		rows, err := s.q.RecordExpiryWarnings(ctx, tx, arg)
		for _, r := range rows {
			written = append(written, eventFromRow(r, nil)) // the sweeper acts alone: no actor
		}
		return err
	})
	if err != nil {
		return 0, dbError(err, "expiry warnings")
	}
	if len(written) > 0 {
		s.publish(nil, written)
	}
	return len(written), nil
}

// ExpiryWarningGiven is the nearest expiry warning the sweep gave the key
// of the expiry it has now (the ledger RecordExpiryWarnings writes), so
// that a daemon connecting after the warning is told too; ok is false
// when the key was not warned of it (yet). Which keys are warned, and
// when, is the sweep's decision alone (KeysToWarnOfExpiry).
func (s *Store) ExpiryWarningGiven(ctx context.Context, keyID uuid.UUID) (w keyhub.ExpiryWarning, ok bool, err error) {
	row, err := s.q.ExpiryWarningGiven(ctx, s.pool, keyID)
	if errors.Is(err, pgx.ErrNoRows) {
		return keyhub.ExpiryWarning{}, false, nil
	}
	if err != nil {
		return keyhub.ExpiryWarning{}, false, dbError(err, "expiry warning")
	}
	return keyhub.ExpiryWarning{ExpiresAt: row.ExpiresAt, Window: time.Duration(row.WindowSeconds) * time.Second}, true, nil
}

// ExpiryWarningRetention is how long after the expiry it warned of a row
// of the expiry-warnings ledger is kept. A sweep warns only of expiries
// still ahead of its clock, so once an expiry has passed its rows answer
// no question a sweep asks; the day is a margin for processes whose clocks
// disagree (one a little behind must still find the row and not warn
// twice).
const ExpiryWarningRetention = 24 * time.Hour

// PruneExpiryWarnings deletes, at now, the rows of the expiry-warnings
// ledger that can never matter again: those of revoked keys, and those of
// expiries more than ExpiryWarningRetention past. It deletes in batches of
// expirySweepBatch rows, each its own short statement, until a batch
// comes back short. Every process prunes, and several may at once: each
// batch skips the rows another is deleting, so each row is deleted once
// and the counts the processes return add up to the rows deleted.
func (s *Store) PruneExpiryWarnings(ctx context.Context, now time.Time) (int64, error) {
	var deleted int64
	for {
		n, err := s.q.PruneExpiryWarnings(ctx, s.pool, dbgen.PruneExpiryWarningsParams{
			Before: now.Add(-ExpiryWarningRetention), MaxRows: expirySweepBatch,
		})
		if err != nil {
			return deleted, dbError(err, "expiry warnings ledger")
		}
		deleted += n
		if n < expirySweepBatch {
			return deleted, nil
		}
	}
}

// RunExpirySweeper records expired keys, writes the expiry warnings due
// (RecordExpiryWarnings) and prunes their ledger (PruneExpiryWarnings), rotates the keys due for zero-touch rotation
// (RotateDueKeys) and prunes key usage older than its retention, every
// interval until ctx ends.
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
			if _, err := s.RecordExpiryWarnings(ctx, time.Now()); err != nil && ctx.Err() == nil {
				log.Warn("expiry warnings sweep", "err", err)
			}
			if _, err := s.PruneExpiryWarnings(ctx, time.Now()); err != nil && ctx.Err() == nil {
				log.Warn("expiry warnings ledger sweep", "err", err)
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
