-- name: InsertEvent :one
-- created_at is the stamp of the writing transaction (LockOwnerWrites).
INSERT INTO api_key_events (api_key_id, owner_id, actor_user_id, actor_key_id, event_type, ip_address, user_agent, details, created_at)
VALUES (@api_key_id, @owner_id, @actor_user_id, @actor_key_id, @event_type, @ip_address, @user_agent, @details, @created_at)
RETURNING *;

-- name: ListEvents :many
SELECT * FROM api_key_events
WHERE owner_id = @owner_id
  AND (sqlc.narg(api_key_id)::uuid IS NULL OR api_key_id = sqlc.narg(api_key_id)::uuid)
  AND (cardinality(@event_types::text[]) = 0 OR event_type = ANY (@event_types::text[]))
  AND (sqlc.narg(since)::timestamptz IS NULL OR created_at >= sqlc.narg(since)::timestamptz)
  AND (sqlc.narg(until)::timestamptz IS NULL OR created_at < sqlc.narg(until)::timestamptz)
  AND (sqlc.narg(after_created_at)::timestamptz IS NULL
       OR (created_at, id) < (sqlc.narg(after_created_at)::timestamptz, sqlc.narg(after_id)::bigint))
ORDER BY created_at DESC, id DESC
LIMIT @max_rows;

-- name: GetEventsByIDs :many
-- The events another process announced, read in one batch.
SELECT * FROM api_key_events WHERE id = ANY (@ids::bigint[]) ORDER BY id;
