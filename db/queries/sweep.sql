-- name: TryLockExpirySweep :one
-- One sweeper at a time in the whole cluster; the others skip their turn.
SELECT pg_try_advisory_xact_lock(4823601135);

-- name: ExpiredKeysToRecord :many
-- The keys that expired within the look-back window and have no `expired`
-- event yet, oldest expiry first.
SELECT k.id, k.owner_id FROM api_keys k
WHERE k.revoked_at IS NULL
  AND k.expires_at IS NOT NULL
  AND k.expires_at <= now()
  AND k.expires_at > now() - make_interval(secs => @look_back_seconds::float8)
  AND NOT EXISTS (
      SELECT 1 FROM api_key_events e
      WHERE e.api_key_id = k.id AND e.event_type = 'expired')
ORDER BY k.expires_at
LIMIT @max_rows;

-- name: RecordExpiredKeys :execrows
-- An `expired` event (no actor: the system writes it) for each given key
-- still not revoked, stamped with the time the sweep took the write locks
-- of their owners (LockOwnerWrites). One sweep runs at a time, so no key
-- gets two.
INSERT INTO api_key_events (api_key_id, owner_id, event_type, details, created_at)
SELECT k.id, k.owner_id, 'expired', jsonb_build_object('expired_at', k.expires_at), @stamp::timestamptz
FROM api_keys k
WHERE k.id = ANY (@ids::uuid[]) AND k.revoked_at IS NULL;

-- name: TryLockRotationSweep :one
-- One auto-rotation sweep at a time in the whole cluster.
SELECT pg_try_advisory_xact_lock(4823601136);

-- name: KeysDueForRotation :many
-- Keys marked auto_rotate_before whose time has come (that long before
-- their expiry), still the current key of their lineage, and with at
-- least one open connection to hand the new secret to; soonest expiry first.
-- A key without an expiry never comes due: its rotation time is NULL.
SELECT k.id, k.owner_id, k.user_id FROM api_keys k
WHERE k.auto_rotate_before_seconds IS NOT NULL
  AND keyhub_key_active(k.revoked_at, k.expires_at, now()) AND k.replaced_by IS NULL
  AND k.expires_at - make_interval(secs => k.auto_rotate_before_seconds::float8) <= now()
  AND EXISTS (SELECT 1 FROM ws_connections c
              WHERE c.slot_id = k.id AND c.expires_at > now() AND c.handover_key IS NOT NULL)
ORDER BY k.expires_at
LIMIT @max_rows;

-- name: KeysToWarnOfExpiry :many
-- The expiry-warnings step: the keys that, at sweep_at, are inside a
-- warning window (how long before their expiry it starts) they were not warned
-- of yet, with the nearest such window: a key inside two at once (no
-- process swept for days) is warned once, of the nearer. A window that
-- started before the key was created is not "entered" (a key made to last
-- 3 days gets no 7-day warning, only the 1-day one). Only keys that will
-- really stop working get one: not revoked, not a refreshed key's
-- predecessor in its grace period (the refresh chose that end), not
-- disabled (itself or through a key it was obtained through; enabled again
-- inside a window, it is warned at the next sweep).
SELECT k.id, k.owner_id, k.expires_at::timestamptz AS expires_at, w.window_seconds::bigint AS window_seconds
FROM api_keys k
CROSS JOIN LATERAL (
    SELECT min(s) AS window_seconds
    FROM unnest(sqlc.arg(windows)::bigint[]) AS s
    WHERE k.expires_at - make_interval(secs => s::float8) <= sqlc.arg(sweep_at)::timestamptz
      AND k.expires_at - k.created_at > make_interval(secs => s::float8)
) w
WHERE k.revoked_at IS NULL
  AND k.replaced_by IS NULL
  AND k.expires_at IS NOT NULL
  AND k.expires_at > sqlc.arg(sweep_at)::timestamptz
  AND k.expires_at <= sqlc.arg(sweep_at)::timestamptz + make_interval(secs => sqlc.arg(horizon_seconds)::float8)
  AND w.window_seconds IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM api_key_expiry_warnings x
      WHERE x.api_key_id = k.id AND x.expires_at = k.expires_at AND x.window_seconds = w.window_seconds)
  AND NOT keyhub_key_disabled(k.id)
ORDER BY k.expires_at, k.id
LIMIT @max_rows;

-- name: RecordExpiryWarnings :many
-- The warnings chosen by KeysToWarnOfExpiry, written under their owners'
-- write locks: a ledger row each (the primary key drops one another
-- process wrote first), and an `expiring` event (no actor: the system
-- writes it) for each ledger row written, only while the key still
-- qualifies (see KeysToWarnOfExpiry) and its expiry is the one warned of.
WITH due AS (
    SELECT unnest(@ids::uuid[]) AS id, unnest(@expires::timestamptz[]) AS expires_at,
           unnest(sqlc.arg(windows)::bigint[]) AS window_seconds
), claimed AS (
    INSERT INTO api_key_expiry_warnings (api_key_id, expires_at, window_seconds, warned_at)
    SELECT d.id, d.expires_at, d.window_seconds, @stamp::timestamptz
    FROM due d
    JOIN api_keys k ON k.id = d.id AND k.expires_at = d.expires_at
                   AND k.revoked_at IS NULL AND k.replaced_by IS NULL AND NOT keyhub_key_disabled(k.id)
    ON CONFLICT DO NOTHING
    RETURNING api_key_id, expires_at, window_seconds
)
INSERT INTO api_key_events (api_key_id, owner_id, event_type, details, created_at)
SELECT k.id, k.owner_id, 'expiring',
       jsonb_build_object('expires_at', c.expires_at, 'window_seconds', c.window_seconds),
       @stamp::timestamptz
FROM claimed c
JOIN api_keys k ON k.id = c.api_key_id
ORDER BY c.expires_at, k.id
RETURNING *;

-- name: PruneExpiryWarnings :execrows
-- One batch of ledger rows that can never matter again: those of a revoked
-- key (it is never warned again), and those whose warned expiry is before
-- @before (no sweep warns of an expiry already behind it). Rows another
-- process is deleting at this moment are skipped, not waited for: several
-- processes prune at once, each its own rows, and a row is deleted once.
WITH doomed AS (
    SELECT x.api_key_id, x.expires_at, x.window_seconds
    FROM api_key_expiry_warnings x
    JOIN api_keys k ON k.id = x.api_key_id
    WHERE x.expires_at < @before::timestamptz OR k.revoked_at IS NOT NULL
    LIMIT @max_rows
    FOR UPDATE OF x SKIP LOCKED
)
DELETE FROM api_key_expiry_warnings x
USING doomed d
WHERE x.api_key_id = d.api_key_id AND x.expires_at = d.expires_at AND x.window_seconds = d.window_seconds;

-- name: ExpiryWarningGiven :one
-- The nearest expiry warning the sweep gave a key (the ledger) of the
-- expiry the key has now: what a daemon connecting with it after the
-- warning is told. No row: the key was not warned of its expiry (yet).
SELECT x.expires_at, min(x.window_seconds)::bigint AS window_seconds
FROM api_key_expiry_warnings x
JOIN api_keys k ON k.id = x.api_key_id AND k.expires_at = x.expires_at
WHERE x.api_key_id = @key_id
GROUP BY x.expires_at;
