-- name: GetKeyForAuth :one
SELECT k.id, k.owner_id, k.user_id, k.name, k.key_prefix, k.scopes, k.expires_at, k.revoked_at,
       k.lineage_id, o.tier, u.email
FROM api_keys k
JOIN owners o ON o.id = k.owner_id
JOIN users u ON u.id = k.user_id
WHERE k.key_hash = $1;

-- name: CountActiveKeysOfUser :one
SELECT count(*) FROM api_keys
WHERE user_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now());

-- name: InsertKey :one
-- created_at is the stamp of the writing transaction (LockOwnerWrites),
-- not its start, so that it is in commit order with every other key write.
-- lineage_id is the lineage of the predecessor for a refresh; NULL starts
-- a new one (the trigger api_keys_lineage_default).
INSERT INTO api_keys (owner_id, user_id, name, key_prefix, key_hash, scopes, expires_at, created_at, lineage_id)
VALUES (@owner_id, @user_id, @name, @key_prefix, @key_hash, @scopes, @expires_at, @created_at, sqlc.narg(lineage_id))
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
  AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
FOR UPDATE;

-- name: GetActiveKeyOfUser :one
-- The newest active key of a user, for the single-key (seed) API.
SELECT * FROM api_keys
WHERE owner_id = @owner_id AND user_id = @user_id
  AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
ORDER BY created_at DESC, id DESC
LIMIT 1;

-- name: ListKeys :many
SELECT * FROM api_keys
WHERE owner_id = @owner_id
  AND CASE @status::text
        WHEN 'active'  THEN revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
        WHEN 'revoked' THEN revoked_at IS NOT NULL
        WHEN 'expired' THEN revoked_at IS NULL AND expires_at <= now()
        ELSE true
      END
  AND (sqlc.narg(after_created_at)::timestamptz IS NULL
       OR (created_at, id) < (sqlc.narg(after_created_at)::timestamptz, sqlc.narg(after_id)::uuid))
ORDER BY created_at DESC, id DESC
LIMIT @max_rows;

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
-- before the update of this statement.
WITH v AS (
    SELECT unnest(@ids::uuid[]) AS id, unnest(@used_ats::timestamptz[]) AS used_at
), locked AS (
    SELECT k.id FROM api_keys k JOIN v ON v.id = k.id
    WHERE k.last_used_at IS NULL OR k.last_used_at < v.used_at
    FOR NO KEY UPDATE OF k SKIP LOCKED
), touched AS (
    UPDATE api_keys k SET last_used_at = v.used_at
    FROM v JOIN locked ON locked.id = v.id
    WHERE k.id = v.id
    RETURNING k.id
)
SELECT v.id::uuid AS id FROM v JOIN api_keys k ON k.id = v.id
WHERE (k.last_used_at IS NULL OR k.last_used_at < v.used_at)
  AND v.id NOT IN (SELECT touched.id FROM touched);
