-- The expiry sweeper writes an `expired` audit event for each key whose
-- expires_at has passed (postgres.Store.RecordExpiredKeys); this index
-- finds the keys that can expire without reading the revoked ones.

-- +goose Up
CREATE INDEX api_keys_expiring_idx ON api_keys (expires_at) WHERE revoked_at IS NULL AND expires_at IS NOT NULL;

-- +goose Down
DROP INDEX api_keys_expiring_idx;
