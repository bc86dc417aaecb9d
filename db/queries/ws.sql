-- name: ClaimWSTicket :execrows
-- 0 rows affected means the ticket was used before.
INSERT INTO ws_tickets (id, expires_at) VALUES ($1, $2)
ON CONFLICT (id) DO NOTHING;

-- name: DeleteExpiredWSTickets :execrows
DELETE FROM ws_tickets WHERE expires_at < now();

-- name: GetKeyHashByID :one
SELECT key_hash FROM api_keys WHERE id = $1;

-- name: KeyStates :many
-- What open connections need to re-check after the change feed was down.
SELECT k.id, k.owner_id, k.user_id, k.key_hash, k.revoked_at, k.expires_at, k.allowed_cidrs, k.scopes,
       keyhub_key_disabled(k.id)::boolean AS disabled
FROM api_keys k
WHERE k.id = ANY (@ids::uuid[]);

-- name: OwnerTiers :many
SELECT id, tier FROM owners WHERE id = ANY (@ids::uuid[]);

-- name: LockWSSlot :exec
-- Serialises admissions to one slot across processes until the transaction ends.
SELECT pg_advisory_xact_lock(hashtextextended(sqlc.arg(slot_id)::text, 0));

-- name: CountWSLeases :one
SELECT count(*) FROM ws_connections WHERE slot_id = @slot_id AND expires_at > now();

-- name: InsertWSLease :one
INSERT INTO ws_connections (id, slot_id, owner_id, process_id, expires_at, handover_key)
VALUES (@id, @slot_id, @owner_id, @process_id, now() + make_interval(secs => @ttl_seconds::float8), sqlc.narg(handover_key))
RETURNING created_at;

-- name: RenewWSLeases :execrows
-- An upsert, not an update: leases that expired while the database was
-- away (and were swept) come back, since their connections are still open,
-- with the time they were first admitted (they rank by it).
INSERT INTO ws_connections (id, slot_id, owner_id, process_id, created_at, expires_at, handover_key)
SELECT unnest(@ids::uuid[]), unnest(@slot_ids::uuid[]), unnest(@owner_ids::uuid[]),
       @process_id, unnest(@created_ats::timestamptz[]), now() + make_interval(secs => @ttl_seconds::float8),
       unnest(@handover_keys::bytea[])
ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at;

-- name: WSLeasesOverCap :many
-- Which of the given leases (one process's) rank past their slot's cap
-- among the slot's live leases on every process, oldest first. Each
-- process asks for its own, and all rank alike, so the newest connections
-- over a cap close wherever they are.
WITH mine AS (
    SELECT unnest(@ids::uuid[]) AS id, unnest(@caps::int[]) AS cap
), ranked AS (
    SELECT w.id, row_number() OVER (PARTITION BY w.slot_id ORDER BY w.created_at, w.id) AS place
    FROM ws_connections w
    WHERE w.slot_id = ANY (@slot_ids::uuid[]) AND w.expires_at > now()
)
SELECT r.id::uuid FROM mine m JOIN ranked r ON r.id = m.id WHERE r.place > m.cap;

-- name: DeleteWSLease :exec
DELETE FROM ws_connections WHERE id = @id;

-- name: DeleteExpiredWSLeases :execrows
DELETE FROM ws_connections WHERE expires_at < now();

-- name: HandoverConnections :many
-- The live connections of a key that can receive a rotated secret (they
-- published a handover key), for a refresh that delivers to them.
SELECT id, handover_key::bytea AS handover_key FROM ws_connections
WHERE slot_id = @key_id AND expires_at > now() AND handover_key IS NOT NULL
ORDER BY id;

-- name: NotifyChange :exec
-- A notice the application sends itself on the change feed's channel
-- (delivered at commit, never after a rollback), for what no trigger
-- sees: a sealed secret for one connection.
SELECT pg_notify('keyhub_changes', @payload::text);
