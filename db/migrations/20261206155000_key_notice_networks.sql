-- A key's notice carries its allowed_cidrs, so that every process closes
-- the connections open from outside them when the owner narrows a key's
-- networks (PATCH /v1/keys/{id}), as it closes those of a revoked key.
-- Otherwise the same notice as 20261206151000_key_controls.sql's.

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
        'sent_at', extract(epoch FROM clock_timestamp())
    )::text
    FROM (SELECT k.revoked_at IS NOT NULL OR (k.expires_at IS NOT NULL AND k.expires_at <= now()) AS ended) s;
$$;
-- +goose StatementEnd
