-- The change feed: every committed change that affects whether a credential
-- is valid or what it may do is announced on the channel keyhub_changes, so
-- that every keyhub process drops what it cached about it (internal/postgres
-- ChangeFeed). Triggers rather than application code send the notices, so a
-- change made by an operator in SQL (UPDATE owners SET tier = ..., a bulk
-- revoke) propagates exactly like one made through the API. pg_notify inside
-- the writing transaction is delivered when it commits and never after a
-- rollback.
--
-- Payloads are small JSON objects with ids only (a notice is limited to
-- 8000 bytes, and a payload over it would abort the writing transaction):
--   {"kind":"key","key_id":..,"owner_id":..,"user_id":..,"key_hash":..,"ended":bool,"expires_at":epoch|null,"sent_at":epoch}
--   {"kind":"owner","owner_id":..,"sent_at":epoch}
--   {"kind":"user","user_id":..,"owner_id":..,"sent_at":epoch}
--   {"kind":"event","event_id":..,"owner_id":..,"sent_at":epoch}
-- sent_at is clock_timestamp() so that listeners can measure propagation lag.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION keyhub_notify_key_change() RETURNS trigger
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

-- +goose StatementBegin
CREATE FUNCTION keyhub_notify_owner_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('keyhub_changes', json_build_object(
        'kind', 'owner',
        'owner_id', OLD.id,
        'sent_at', extract(epoch FROM clock_timestamp())
    )::text);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION keyhub_notify_user_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('keyhub_changes', json_build_object(
        'kind', 'user',
        'user_id', OLD.id,
        'owner_id', OLD.default_owner_id,
        'sent_at', extract(epoch FROM clock_timestamp())
    )::text);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION keyhub_notify_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('keyhub_changes', json_build_object(
        'kind', 'event',
        'event_id', NEW.id,
        'owner_id', NEW.owner_id,
        'sent_at', extract(epoch FROM clock_timestamp())
    )::text);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- last_used_at is written in batches all the time and changes nothing a
-- cache holds: only columns that decide what a key may do send a notice.
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

CREATE TRIGGER owners_notify_change
    AFTER UPDATE OR DELETE ON owners
    FOR EACH ROW
    EXECUTE FUNCTION keyhub_notify_owner_change();

-- last_seen_at is batched like last_used_at; email is display only.
CREATE TRIGGER users_notify_change
    AFTER UPDATE OF default_owner_id OR DELETE ON users
    FOR EACH ROW
    EXECUTE FUNCTION keyhub_notify_user_change();

CREATE TRIGGER api_key_events_notify
    AFTER INSERT ON api_key_events
    FOR EACH ROW
    EXECUTE FUNCTION keyhub_notify_event();

-- +goose Down
DROP TRIGGER api_key_events_notify ON api_key_events;
DROP TRIGGER users_notify_change ON users;
DROP TRIGGER owners_notify_change ON owners;
DROP TRIGGER api_keys_notify_change ON api_keys;
DROP FUNCTION keyhub_notify_event();
DROP FUNCTION keyhub_notify_user_change();
DROP FUNCTION keyhub_notify_owner_change();
DROP FUNCTION keyhub_notify_key_change();
