-- Controls on a key (PATCH /v1/keys/{id}, POST .../disable and .../enable):
--   * metadata: the owner's JSON object, at most 4 KiB (checked by the API
--     on its compact form; the looser check here keeps rows sane), never
--     interpreted;
--   * allowed_cidrs: the networks the key may be used from (empty: any),
--     normalized (cidr refuses host bits), at most 32;
--   * disabled_at: when the key was disabled. A disabled key is refused
--     (KEY_DISABLED), and so is every key obtained through it
--     (api_key_parents, transitively) until it is enabled again.
-- The change feed announces each of them like any change of what a key may
-- do, with a "disabled" field that says whether the key is refused because
-- it or a key it was obtained through is disabled; disabling or enabling a
-- key also announces each key obtained through it, so that every process
-- drops what it cached of them.

-- +goose Up
ALTER TABLE api_keys
    ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(metadata) = 'object' AND octet_length(metadata::text) <= 16384),
    ADD COLUMN allowed_cidrs cidr[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(allowed_cidrs) <= 32 AND array_position(allowed_cidrs, NULL) IS NULL),
    ADD COLUMN disabled_at timestamptz;

ALTER TABLE api_key_events DROP CONSTRAINT api_key_events_event_type_check;
ALTER TABLE api_key_events ADD CONSTRAINT api_key_events_event_type_check
    CHECK (event_type IN ('created', 'refreshed', 'revoked', 'used', 'expired', 'connection_closed', 'leaked',
                          'updated', 'disabled', 'enabled'));

-- Whether the key, or a key it was obtained through (transitively), is
-- disabled. UNION, not UNION ALL: the walk ends on cycles.
-- +goose StatementBegin
CREATE FUNCTION keyhub_key_disabled(key uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE ancestors (id) AS (
        SELECT key
      UNION
        SELECT p.parent_id FROM api_key_parents p JOIN ancestors a ON p.key_id = a.id
    )
    SELECT EXISTS (
        SELECT 1 FROM ancestors a JOIN api_keys k ON k.id = a.id WHERE k.disabled_at IS NOT NULL
    );
$$;
-- +goose StatementEnd

-- One key's notice (see 20261202000010_change_feed.sql), now with
-- "disabled": only for a key that still works otherwise, as the Go side
-- builds it (changes.KeyChangeOf).
-- +goose StatementBegin
CREATE FUNCTION keyhub_key_notice(k api_keys) RETURNS text
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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION keyhub_notify_key_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    descendant api_keys;
BEGIN
    PERFORM pg_notify('keyhub_changes', keyhub_key_notice(NEW));
    -- Disabling or enabling a key changes what every key obtained through
    -- it may do: each is announced too.
    IF OLD.disabled_at IS DISTINCT FROM NEW.disabled_at THEN
        FOR descendant IN
            WITH RECURSIVE descendants (id) AS (
                SELECT p.key_id FROM api_key_parents p WHERE p.parent_id = NEW.id
              UNION
                SELECT p.key_id FROM api_key_parents p JOIN descendants d ON p.parent_id = d.id
            )
            SELECT k.* FROM api_keys k JOIN descendants d ON d.id = k.id WHERE k.id <> NEW.id
        LOOP
            PERFORM pg_notify('keyhub_changes', keyhub_key_notice(descendant));
        END LOOP;
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

DROP TRIGGER api_keys_notify_change ON api_keys;
CREATE TRIGGER api_keys_notify_change
    AFTER UPDATE ON api_keys
    FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
       OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
       OR OLD.scopes IS DISTINCT FROM NEW.scopes
       OR OLD.key_hash IS DISTINCT FROM NEW.key_hash
       OR OLD.owner_id IS DISTINCT FROM NEW.owner_id
       OR OLD.user_id IS DISTINCT FROM NEW.user_id
       OR OLD.name IS DISTINCT FROM NEW.name
       OR OLD.allowed_cidrs IS DISTINCT FROM NEW.allowed_cidrs
       OR OLD.disabled_at IS DISTINCT FROM NEW.disabled_at)
    EXECUTE FUNCTION keyhub_notify_key_change();

-- +goose Down
DROP TRIGGER api_keys_notify_change ON api_keys;
CREATE TRIGGER api_keys_notify_change
    AFTER UPDATE ON api_keys
    FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
       OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
       OR OLD.scopes IS DISTINCT FROM NEW.scopes
       OR OLD.key_hash IS DISTINCT FROM NEW.key_hash
       OR OLD.owner_id IS DISTINCT FROM NEW.owner_id
       OR OLD.user_id IS DISTINCT FROM NEW.user_id)
    EXECUTE FUNCTION keyhub_notify_key_change();
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION keyhub_notify_key_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('keyhub_changes', json_build_object(
        'kind', 'key',
        'key_id', NEW.id,
        'owner_id', NEW.owner_id,
        'user_id', NEW.user_id,
        'key_hash', NEW.key_hash,
        'ended', NEW.revoked_at IS NOT NULL OR (NEW.expires_at IS NOT NULL AND NEW.expires_at <= now()),
        'expires_at', extract(epoch FROM NEW.expires_at),
        'sent_at', extract(epoch FROM clock_timestamp())
    )::text);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
DROP FUNCTION keyhub_key_notice(api_keys);
DROP FUNCTION keyhub_key_disabled(uuid);
ALTER TABLE api_key_events DROP CONSTRAINT api_key_events_event_type_check;
ALTER TABLE api_key_events ADD CONSTRAINT api_key_events_event_type_check
    CHECK (event_type IN ('created', 'refreshed', 'revoked', 'used', 'expired', 'connection_closed', 'leaked')) NOT VALID;
ALTER TABLE api_keys DROP COLUMN disabled_at, DROP COLUMN allowed_cidrs, DROP COLUMN metadata;
