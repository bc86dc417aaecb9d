-- A key's notice carries its scopes, so that every process closes the
-- connections admitted with a scope the owner took away from the key
-- (PATCH /v1/keys/{id} with scopes), as it closes those of a revoked key.
-- Otherwise the same notice as 20261206155000_key_notice_networks.sql's.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION keyhub_key_notice(k api_keys) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'kind', 'key',
        'key_id', k.id,
        'owner_id', k.owner_id,
        'user_id', k.user_id,
        'key_hash', k.key_hash,
        'ended', ended,
        'disabled', NOT ended AND keyhub_key_disabled(k.id),
        'expires_at', extract(epoch FROM k.expires_at),
        'allowed_cidrs', k.allowed_cidrs,
        'scopes', k.scopes,
        'sent_at', extract(epoch FROM clock_timestamp())
    )::text
    FROM (SELECT k.revoked_at IS NOT NULL OR (k.expires_at IS NOT NULL AND k.expires_at <= now()) AS ended) s;
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION keyhub_key_notice(k api_keys) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'kind', 'key',
        'key_id', k.id,
        'owner_id', k.owner_id,
        'user_id', k.user_id,
        'key_hash', k.key_hash,
        'ended', ended,
        'disabled', NOT ended AND keyhub_key_disabled(k.id),
        'expires_at', extract(epoch FROM k.expires_at),
        'allowed_cidrs', k.allowed_cidrs,
        'sent_at', extract(epoch FROM clock_timestamp())
    )::text
    FROM (SELECT k.revoked_at IS NOT NULL OR (k.expires_at IS NOT NULL AND k.expires_at <= now()) AS ended) s;
$$;
-- +goose StatementEnd
