-- name: GetKeyByHash :one
-- The key a reported token is, whoever owns it (a leak report names no
-- owner).
SELECT * FROM api_keys WHERE key_hash = @key_hash;
