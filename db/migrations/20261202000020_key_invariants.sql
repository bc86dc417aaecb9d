-- Invariants on keys (README, "Invariants"): the audit trail names the key
-- that acted, and a key has at most one predecessor, so that "one
-- grace-period predecessor per usable key" holds by construction.

-- +goose Up
-- The key that acted, when a key acted (NULL for a dashboard user and for
-- events the system writes on its own). It belongs to the event's owner:
-- a key can only act inside its own tenant.
ALTER TABLE api_key_events ADD COLUMN actor_key_id uuid;
ALTER TABLE api_key_events
    ADD CONSTRAINT api_key_events_actor_key_fkey
        FOREIGN KEY (actor_key_id, owner_id) REFERENCES api_keys (id, owner_id),
    ADD CONSTRAINT api_key_events_actor_key_has_user
        CHECK (actor_key_id IS NULL OR actor_user_id IS NOT NULL);

-- A refresh creates a new key for each old one, so no key replaces two;
-- the index also finds a key's predecessor, which a refresh or revoke of
-- the key ends.
CREATE UNIQUE INDEX api_keys_replaced_by_key ON api_keys (replaced_by) WHERE replaced_by IS NOT NULL;

-- +goose Down
DROP INDEX api_keys_replaced_by_key;
ALTER TABLE api_key_events DROP COLUMN actor_key_id;
