-- Zero-touch rotation (README, "Zero-touch rotation"). A key may ask to be
-- refreshed automatically some time before it expires, with the new secret
-- handed to its open connections; and each connection that can receive a
-- secret publishes a public key (X25519, HPKE) to which a refresh on any
-- process seals it. The private half lives only in the memory of the
-- process holding the socket: this table never holds anything that opens a
-- secret.

-- +goose Up
ALTER TABLE api_keys ADD COLUMN auto_rotate_before_seconds bigint,
    ADD CONSTRAINT api_keys_auto_rotate_positive
        CHECK (auto_rotate_before_seconds IS NULL OR auto_rotate_before_seconds > 0);
CREATE INDEX api_keys_auto_rotate_idx ON api_keys (expires_at)
    WHERE auto_rotate_before_seconds IS NOT NULL AND revoked_at IS NULL AND replaced_by IS NULL;
ALTER TABLE ws_connections ADD COLUMN handover_key bytea;

-- +goose Down
ALTER TABLE ws_connections DROP COLUMN handover_key;
DROP INDEX api_keys_auto_rotate_idx;
ALTER TABLE api_keys DROP COLUMN auto_rotate_before_seconds;
