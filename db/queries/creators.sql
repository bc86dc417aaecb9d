-- name: KeyCreators :many
-- Who created each of the keys: the actor of its "created" event, with the
-- user's email and the acting key's prefix. Both joins stay inside the
-- owner: a user who belongs to another owner now (or a key of another
-- owner) is never named, only its id. A key keyhub made on its own (an
-- auto-rotation) has no actor.
SELECT e.api_key_id AS key_id, e.actor_user_id, u.email AS actor_email, e.actor_key_id, ck.key_prefix AS actor_key_prefix
FROM api_key_events e
LEFT JOIN users u ON u.id = e.actor_user_id AND u.default_owner_id = e.owner_id
LEFT JOIN api_keys ck ON ck.id = e.actor_key_id AND ck.owner_id = e.owner_id
WHERE e.owner_id = @owner_id AND e.api_key_id = ANY (@key_ids::uuid[]) AND e.event_type = 'created';
