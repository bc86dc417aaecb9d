-- name: GetKeyForAuth :one
SELECT k.id, k.owner_id, k.user_id, k.name, k.key_prefix, k.scopes, k.expires_at, k.revoked_at,
       k.lineage_id, o.tier, u.email, k.allowed_cidrs, keyhub_key_disabled(k.id)::boolean AS disabled
FROM api_keys k
JOIN owners o ON o.id = k.owner_id
JOIN users u ON u.id = k.user_id
WHERE k.key_hash = $1;

-- name: CountActiveKeysOfUser :one
SELECT count(*) FROM api_keys
WHERE user_id = $1 AND keyhub_key_active(revoked_at, expires_at, now());

-- name: InsertKey :one
-- created_at is the stamp of the writing transaction (LockOwnerWrites),
-- not its start, so that it is in commit order with every other key write.
-- lineage_id is the lineage of the predecessor for a refresh; NULL starts
-- a new one (the trigger api_keys_lineage_default).
INSERT INTO api_keys (owner_id, user_id, name, key_prefix, key_hash, scopes, expires_at, created_at, lineage_id,
                      auto_rotate_before_seconds, metadata, allowed_cidrs)
VALUES (@owner_id, @user_id, @name, @key_prefix, @key_hash, @scopes, @expires_at, @created_at, sqlc.narg(lineage_id),
        sqlc.narg(auto_rotate_before_seconds), @metadata, @allowed_cidrs)
RETURNING *;

-- name: GetKey :one
SELECT * FROM api_keys WHERE id = @id AND owner_id = @owner_id;

-- name: LockOwnerWrites :one
-- Taken first by every transaction that writes keys or audit events of an
-- owner, and held until it ends: the writes of an owner commit one after
-- the other, and each is stamped (key created_at and revoked_at, event
-- created_at) with the time it took the lock, after the previous one
-- committed. So stamps and event ids follow commit order within an owner:
-- an auditor never reads that a key acted after its revocation, and a
-- listing newest-first never gains an event behind one already read. The
-- start of the transaction (now()) is no such stamp: a write that waited on a
-- lock would be stamped before writes that committed while it waited.
WITH locked AS MATERIALIZED (
    SELECT 1 AS held FROM pg_advisory_xact_lock(hashtextextended('keyhub.owner_writes:' || sqlc.arg(owner_id)::uuid::text, 0))
)
SELECT clock_timestamp()::timestamptz AS stamp FROM locked;

-- name: GetKeyForUpdate :one
SELECT * FROM api_keys WHERE id = @id AND owner_id = @owner_id FOR UPDATE;

-- name: GetPredecessorInGraceForUpdate :one
-- The key that the given key replaced, while it still works (its grace
-- period): at most one, by the unique index on replaced_by.
SELECT * FROM api_keys
WHERE replaced_by = @id::uuid AND owner_id = @owner_id
  AND keyhub_key_active(revoked_at, expires_at, now())
FOR UPDATE;

-- name: GetActiveKeyOfUser :one
-- The newest active key of a user, for the single-key (seed) API.
SELECT * FROM api_keys
WHERE owner_id = @owner_id AND user_id = @user_id
  AND keyhub_key_active(revoked_at, expires_at, now())
ORDER BY created_at DESC, id DESC
LIMIT 1;

-- name: ListKeys :many
-- A page of an owner's keys with each one's status computed once, on the
-- database's clock, for both the filter and the answer: a key expiring
-- while the page is read cannot be listed as active and answered as
-- expired. A listing never reads key_hash. A NULL status lists every key.
-- Who created each key (the actor of its one "created" event, reached by
-- api_key_events_created_idx) comes in the same query, not a second one;
-- a user's email and an acting key's prefix only while they belong to the
-- key's owner (as KeyCreators).
SELECT l.id, l.owner_id, l.user_id, l.name, l.key_prefix, l.scopes, l.expires_at, l.last_used_at, l.created_at, l.revoked_at,
       l.replaced_by, l.lineage_id, l.auto_rotate_before_seconds, l.metadata, l.allowed_cidrs, l.disabled_at, l.status,
       l.last_used_ip, l.last_used_user_agent,
       c.actor_user_id AS creator_user_id, cu.email AS creator_email, c.actor_key_id AS creator_key_id, ck.key_prefix AS creator_key_prefix
FROM (
    SELECT id, owner_id, user_id, name, key_prefix, scopes, expires_at, last_used_at, created_at, revoked_at,
           replaced_by, lineage_id, auto_rotate_before_seconds, metadata, allowed_cidrs, disabled_at, status,
           last_used_ip, last_used_user_agent
    FROM (
        SELECT k.*, keyhub_key_status(k.revoked_at, k.expires_at, now()) AS status
        FROM api_keys k
        WHERE k.owner_id = @owner_id
    ) listed
    WHERE (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status)::text)
      AND (sqlc.narg(after_created_at)::timestamptz IS NULL
           OR (created_at, id) < (sqlc.narg(after_created_at)::timestamptz, sqlc.narg(after_id)::uuid))
    ORDER BY created_at DESC, id DESC
    LIMIT @max_rows
) l
LEFT JOIN api_key_events c ON c.api_key_id = l.id AND c.event_type = 'created' AND c.owner_id = l.owner_id
LEFT JOIN users cu ON cu.id = c.actor_user_id AND cu.default_owner_id = l.owner_id
LEFT JOIN api_keys ck ON ck.id = c.actor_key_id AND ck.owner_id = l.owner_id
ORDER BY l.created_at DESC, l.id DESC;

-- name: RevokeKey :one
UPDATE api_keys SET revoked_at = @revoked_at
WHERE id = @id AND owner_id = @owner_id AND revoked_at IS NULL
RETURNING *;

-- name: ReplaceKey :one
-- Links a key to its replacement and ends it: at once (at revoked_at) when
-- retire_at is NULL, else by moving its expiry to retire_at (never later
-- than it was).
UPDATE api_keys
SET replaced_by = @replaced_by,
    revoked_at = CASE WHEN sqlc.narg(retire_at)::timestamptz IS NULL THEN @revoked_at::timestamptz ELSE revoked_at END,
    expires_at = CASE WHEN sqlc.narg(retire_at)::timestamptz IS NULL THEN expires_at
                      ELSE LEAST(expires_at, sqlc.narg(retire_at)::timestamptz) END
WHERE id = @id AND owner_id = @owner_id
RETURNING *;

-- name: TouchKeys :many
-- Records when keys were last used, and returns the ids it skipped because
-- another transaction holds their row (a flush of the same keys by another
-- process, a revoke): a flush never waits for a row lock, so flushes on
-- several processes cannot deadlock each other and never hold up a revoke.
-- The caller writes the skipped ids at its next flush. All parts of the
-- statement see one snapshot: the last SELECT reads last_used_at as it was
-- before the update of this statement. The address and agent are those of
-- the use at used_at, so they move only with it (a NULL address or an
-- empty agent: unknown).
WITH v AS (
    SELECT unnest(@ids::uuid[]) AS id, unnest(@used_ats::timestamptz[]) AS used_at,
           unnest(@ips::inet[]) AS ip, unnest(@user_agents::text[]) AS user_agent
), locked AS (
    SELECT k.id FROM api_keys k JOIN v ON v.id = k.id
    WHERE k.last_used_at IS NULL OR k.last_used_at < v.used_at
    FOR NO KEY UPDATE OF k SKIP LOCKED
), touched AS (
    UPDATE api_keys k SET last_used_at = v.used_at, last_used_ip = v.ip, last_used_user_agent = NULLIF(v.user_agent, '')
    FROM v JOIN locked ON locked.id = v.id
    WHERE k.id = v.id
    RETURNING k.id
)
SELECT v.id::uuid AS id FROM v JOIN api_keys k ON k.id = v.id
WHERE (k.last_used_at IS NULL OR k.last_used_at < v.used_at)
  AND v.id NOT IN (SELECT touched.id FROM touched);

-- name: AddKeyParent :exec
-- Records that whoever held parent_id could get the secret of key_id
-- (db/migrations/20261206122500_key_parents.sql).
INSERT INTO api_key_parents (key_id, parent_id, owner_id)
VALUES (@key_id, @parent_id, @owner_id)
ON CONFLICT DO NOTHING;

-- name: InheritKeyParents :exec
-- A successor can be obtained through whatever its predecessor could.
INSERT INTO api_key_parents (key_id, parent_id, owner_id)
SELECT sqlc.arg(successor)::uuid, p.parent_id, p.owner_id
FROM api_key_parents p
WHERE p.key_id = sqlc.arg(predecessor)::uuid AND p.parent_id <> sqlc.arg(successor)::uuid
ON CONFLICT DO NOTHING;

-- name: PassKeyChildren :exec
-- The children of refreshed keys pass to their successor: a refresh is
-- not a revocation, and a later revoke of the old key (a rotation's
-- clean-up) must not end them, while a revoke of the successor must.
WITH moved AS (
    DELETE FROM api_key_parents p
    WHERE p.parent_id = ANY (sqlc.arg(predecessors)::uuid[])
    RETURNING p.key_id, p.owner_id
)
INSERT INTO api_key_parents (key_id, parent_id, owner_id)
SELECT DISTINCT m.key_id, sqlc.arg(successor)::uuid, m.owner_id
FROM moved m
WHERE m.key_id <> sqlc.arg(successor)::uuid
ON CONFLICT DO NOTHING;

-- name: RevokeDescendants :many
-- Revokes, at revoked_at, every usable key obtained (transitively) through
-- one of the roots, and returns each with one parent it was obtained
-- through (a root or another key of the walk). The walk passes through
-- keys that already ended: what was made through them was obtainable
-- through the roots too. UNION, not UNION ALL: the walk ends on cycles.
WITH RECURSIVE descendants (id, parent_id) AS (
    SELECT p.key_id, p.parent_id FROM api_key_parents p WHERE p.parent_id = ANY (sqlc.arg(roots)::uuid[])
  UNION
    SELECT p.key_id, p.parent_id FROM api_key_parents p JOIN descendants d ON p.parent_id = d.id
), one_parent AS (
    SELECT DISTINCT ON (d.id) d.id, d.parent_id FROM descendants d ORDER BY d.id, d.parent_id
)
UPDATE api_keys k SET revoked_at = sqlc.arg(revoked_at)::timestamptz
FROM one_parent d
WHERE k.id = d.id AND keyhub_key_active(k.revoked_at, k.expires_at, sqlc.arg(revoked_at)::timestamptz)
RETURNING sqlc.embed(k), d.parent_id;

-- name: EarliestParentExpiry :one
-- The earliest expiry among the keys a key can be obtained through: a key
-- the system rotates on its own never outlives one of them.
SELECT p.expires_at FROM api_key_parents l
JOIN api_keys p ON p.id = l.parent_id
WHERE l.key_id = @key_id AND p.expires_at IS NOT NULL
ORDER BY p.expires_at
LIMIT 1;
