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

-- name: LockUserForKeys :one
-- Taken by every transaction that adds to a user's active keys, so that
-- counting them and inserting one cannot interleave. Returns the owner's
-- tier as it is now, not as a cached principal remembers it.
SELECT o.tier
FROM users u
JOIN owners o ON o.id = u.default_owner_id
WHERE u.id = $1
FOR UPDATE OF u;

-- name: TouchUsers :exec
UPDATE users u
SET last_seen_at = v.seen_at
FROM (SELECT unnest(@ids::uuid[]) AS id, unnest(@seen_ats::timestamptz[]) AS seen_at) AS v
WHERE u.id = v.id AND u.last_seen_at < v.seen_at;
