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
SELECT k.id, k.owner_id, k.user_id, k.key_hash, k.revoked_at, k.expires_at
FROM api_keys k
WHERE k.id = ANY (@ids::uuid[]);

-- name: OwnerTiers :many
SELECT id, tier FROM owners WHERE id = ANY (@ids::uuid[]);
