-- The first schema of keyhub: tenants (owners), users, API keys and their
-- audit trail. Constraints make bad rows impossible, not only bad requests.

-- +goose Up
CREATE TABLE owners (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 320),
    tier       text        NOT NULL DEFAULT 'free'
                           CHECK (tier IN ('free', 'pro', 'team', 'enterprise')),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    -- The Supabase user id (the JWT's sub).
    id               uuid        PRIMARY KEY,
    -- Supabase tokens may carry no email (phone sign-in): empty, never NULL.
    email            text        NOT NULL DEFAULT '' CHECK (length(email) <= 320),
    default_owner_id uuid        NOT NULL REFERENCES owners (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_default_owner_id_idx ON users (default_owner_id);

CREATE TABLE api_keys (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id     uuid        NOT NULL REFERENCES owners (id),
    user_id      uuid        NOT NULL REFERENCES users (id),
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100 AND name = btrim(name)),
    key_prefix   text        NOT NULL CHECK (key_prefix ~ '^mk_[A-Za-z0-9_-]{8}$'),
    -- SHA-256 of the whole key, lower-case hex; the key itself is never stored.
    key_hash     text        NOT NULL CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    scopes       text[]      NOT NULL DEFAULT '{}'
                             CHECK (scopes <@ ARRAY['keys:read', 'keys:write', 'events:read', 'ws:connect']::text[]),
    expires_at   timestamptz,
    last_used_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    -- The key a refresh created in this key's place.
    replaced_by  uuid,
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash),
    -- Lets events and replacements reference a key together with its owner,
    -- so neither can point into another tenant.
    CONSTRAINT api_keys_id_owner_key UNIQUE (id, owner_id),
    CONSTRAINT api_keys_replaced_by_fkey FOREIGN KEY (replaced_by, owner_id) REFERENCES api_keys (id, owner_id),
    CONSTRAINT api_keys_not_replaced_by_self CHECK (replaced_by IS NULL OR replaced_by <> id),
    CONSTRAINT api_keys_expires_after_creation CHECK (expires_at IS NULL OR expires_at > created_at),
    CONSTRAINT api_keys_revoked_after_creation CHECK (revoked_at IS NULL OR revoked_at >= created_at)
);
-- Lookup by hash uses the unique index above; it must also find revoked keys,
-- so that their use is answered KEY_REVOKED rather than UNKNOWN_API_KEY.
CREATE INDEX api_keys_owner_listing_idx ON api_keys (owner_id, created_at DESC, id DESC);
CREATE INDEX api_keys_user_active_idx ON api_keys (user_id) WHERE revoked_at IS NULL;

CREATE TABLE api_key_events (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    api_key_id    uuid        NOT NULL,
    owner_id      uuid        NOT NULL REFERENCES owners (id),
    -- NULL for events the system writes on its own (expiry).
    actor_user_id uuid        REFERENCES users (id),
    event_type    text        NOT NULL
                              CHECK (event_type IN ('created', 'refreshed', 'revoked', 'used', 'expired')),
    ip_address    inet,
    user_agent    text        CHECK (length(user_agent) <= 512),
    details       jsonb       CHECK (details IS NULL OR jsonb_typeof(details) = 'object'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_key_events_key_fkey FOREIGN KEY (api_key_id, owner_id) REFERENCES api_keys (id, owner_id)
);
CREATE INDEX api_key_events_owner_idx ON api_key_events (owner_id, created_at DESC, id DESC);
CREATE INDEX api_key_events_key_idx ON api_key_events (api_key_id, created_at DESC, id DESC);

-- The audit trail is append-only, and keys are revoked, never deleted.
-- +goose StatementBegin
CREATE FUNCTION keyhub_forbid_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER api_key_events_append_only
    BEFORE UPDATE OR DELETE ON api_key_events
    FOR EACH ROW EXECUTE FUNCTION keyhub_forbid_change();
CREATE TRIGGER api_keys_never_deleted
    BEFORE DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION keyhub_forbid_change();

-- +goose Down
DROP TABLE api_key_events;
DROP TABLE api_keys;
DROP TABLE users;
DROP TABLE owners;
DROP FUNCTION keyhub_forbid_change();
