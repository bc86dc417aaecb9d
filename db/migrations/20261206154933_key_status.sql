-- +goose Up
-- The one definition of a key's status. A key is active until it is
-- revoked or its expiry passes; a revoked key stays revoked after its
-- expiry. Every query that asks "is this key active" or "what is its
-- status" calls these with now() (one clock per statement), so a filter
-- and the status it answers with never disagree. Plain SQL expressions,
-- IMMUTABLE: the planner inlines them, and keyhub_key_active still matches
-- the partial indexes on revoked_at IS NULL. keyhub.Key.StatusAt is the
-- same rule for decisions taken in Go at a known instant (a transaction's
-- stamp); a test holds the two together.
-- +goose StatementBegin
CREATE FUNCTION keyhub_key_active(revoked_at timestamptz, expires_at timestamptz, at timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT revoked_at IS NULL AND (expires_at IS NULL OR expires_at > at)
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION keyhub_key_status(revoked_at timestamptz, expires_at timestamptz, at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN revoked_at IS NOT NULL THEN 'revoked'
        WHEN keyhub_key_active(revoked_at, expires_at, at) THEN 'active'
        ELSE 'expired'
    END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION keyhub_key_status(timestamptz, timestamptz, timestamptz);
DROP FUNCTION keyhub_key_active(timestamptz, timestamptz, timestamptz);
