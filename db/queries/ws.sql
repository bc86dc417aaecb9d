-- name: ClaimWSTicket :execrows
-- 0 rows affected means the ticket was used before.
INSERT INTO ws_tickets (id, expires_at) VALUES ($1, $2)
ON CONFLICT (id) DO NOTHING;

-- name: DeleteExpiredWSTickets :execrows
DELETE FROM ws_tickets WHERE expires_at < now();

-- name: GetKeyHashByID :one
SELECT key_hash FROM api_keys WHERE id = $1;
