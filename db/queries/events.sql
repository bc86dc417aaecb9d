-- name: InsertEvent :one
-- created_at is the stamp of the writing transaction (LockOwnerWrites).
INSERT INTO api_key_events (api_key_id, owner_id, actor_user_id, actor_key_id, event_type, ip_address, user_agent, details, created_at)
VALUES (@api_key_id, @owner_id, @actor_user_id, @actor_key_id, @event_type, @ip_address, @user_agent, @details, @created_at)
RETURNING *;

-- name: ListEvents :many
-- actor_email: the acting user's, only while the user belongs to this
-- owner (never another tenant's address).
SELECT sqlc.embed(e), u.email AS actor_email
FROM api_key_events e
LEFT JOIN users u ON u.id = e.actor_user_id AND u.default_owner_id = e.owner_id
WHERE e.owner_id = @owner_id
  AND (sqlc.narg(api_key_id)::uuid IS NULL OR e.api_key_id = sqlc.narg(api_key_id)::uuid)
  AND (cardinality(@event_types::text[]) = 0 OR e.event_type = ANY (@event_types::text[]))
  AND (sqlc.narg(since)::timestamptz IS NULL OR e.created_at >= sqlc.narg(since)::timestamptz)
  AND (sqlc.narg(until)::timestamptz IS NULL OR e.created_at < sqlc.narg(until)::timestamptz)
  AND (sqlc.narg(after_created_at)::timestamptz IS NULL
       OR (e.created_at, e.id) < (sqlc.narg(after_created_at)::timestamptz, sqlc.narg(after_id)::bigint))
ORDER BY e.created_at DESC, e.id DESC
LIMIT @max_rows;

-- name: GetEventsByIDs :many
-- The events another process announced, read in one batch (actor_email
-- as ListEvents has it).
SELECT sqlc.embed(e), u.email AS actor_email
FROM api_key_events e
LEFT JOIN users u ON u.id = e.actor_user_id AND u.default_owner_id = e.owner_id
WHERE e.id = ANY (@ids::bigint[]) ORDER BY e.id;
