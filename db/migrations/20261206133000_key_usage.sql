-- Requests made with each key, per hour and outcome class (GET
-- /v1/keys/{id}/usage). Each process counts in memory and adds its counts
-- here in batches (internal/usage), so a row is the sum over processes.
-- No foreign key: a flush must never wait for, or be refused by, a write
-- to the key's row; rows of a key that is gone age out with the others
-- (90 days, pruned by the sweeper).
-- +goose Up
CREATE TABLE api_key_usage (
    key_id       uuid        NOT NULL,
    hour         timestamptz NOT NULL CHECK (date_trunc('hour', hour, 'UTC') = hour),
    ok           bigint      NOT NULL DEFAULT 0 CHECK (ok >= 0),
    refused      bigint      NOT NULL DEFAULT 0 CHECK (refused >= 0),
    rate_limited bigint      NOT NULL DEFAULT 0 CHECK (rate_limited >= 0),
    PRIMARY KEY (key_id, hour)
);
-- The retention sweep deletes by hour alone.
CREATE INDEX api_key_usage_hour ON api_key_usage (hour);

-- +goose Down
DROP TABLE api_key_usage;
