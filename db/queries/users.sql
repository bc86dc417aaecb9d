-- name: GetUserPrincipal :one
SELECT u.id, u.email, u.default_owner_id, o.tier, u.last_seen_at
FROM users u
JOIN owners o ON o.id = u.default_owner_id
WHERE u.id = $1;

-- name: LockUserProvisioning :exec
-- Serialises the provisioning of one user id across connections and
-- processes; released at the end of the transaction.
SELECT pg_advisory_xact_lock(hashtextextended(CAST(@user_id::uuid AS text), 0));

-- name: InsertOwner :one
INSERT INTO owners (name) VALUES (@name)
RETURNING id, tier;

-- name: InsertUser :exec
INSERT INTO users (id, email, default_owner_id) VALUES (@id, @email, @default_owner_id);

-- name: LockUsersForKeys :many
-- Taken by every transaction that changes keys (create, refresh, revoke)
-- on the acting user and on the user whose keys change, so that checking
-- the acting credential, counting keys and changing them cannot
-- interleave with another change. Rows are locked in id order, so two
-- transactions locking the same pair cannot deadlock. Returns each
-- owner's tier as it is now, not as a cached principal remembers it; a
-- user missing from the answer no longer exists.
SELECT u.id, u.default_owner_id, o.tier
FROM users u
JOIN owners o ON o.id = u.default_owner_id
WHERE u.id = ANY (@ids::uuid[])
ORDER BY u.id
FOR UPDATE OF u;

-- name: TouchUsers :many
-- Records when users were last seen; like TouchKeys, it skips (and
-- returns) the rows another transaction holds instead of waiting for them.
WITH v AS (
    SELECT unnest(@ids::uuid[]) AS id, unnest(@seen_ats::timestamptz[]) AS seen_at
), locked AS (
    SELECT u.id FROM users u JOIN v ON v.id = u.id
    WHERE u.last_seen_at < v.seen_at
    FOR NO KEY UPDATE OF u SKIP LOCKED
), touched AS (
    UPDATE users u SET last_seen_at = v.seen_at
    FROM v JOIN locked ON locked.id = v.id
    WHERE u.id = v.id
    RETURNING u.id
)
SELECT v.id::uuid AS id FROM v JOIN users u ON u.id = v.id
WHERE u.last_seen_at < v.seen_at
  AND v.id NOT IN (SELECT touched.id FROM touched);
