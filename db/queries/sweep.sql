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
SELECT k.id, k.owner_id, k.user_id FROM api_keys k
WHERE k.auto_rotate_before_seconds IS NOT NULL
  AND k.revoked_at IS NULL AND k.replaced_by IS NULL
  AND k.expires_at > now()
  AND k.expires_at - make_interval(secs => k.auto_rotate_before_seconds::float8) <= now()
  AND EXISTS (SELECT 1 FROM ws_connections c
              WHERE c.slot_id = k.id AND c.expires_at > now() AND c.handover_key IS NOT NULL)
ORDER BY k.expires_at
LIMIT @max_rows;
