-- Expiry warnings (postgres.Store.RecordExpiryWarnings): an `expiring`
-- event when a key enters the 7-day and the 1-day window before its
-- expiry. api_key_expiry_warnings is the ledger of warnings given: one row
-- per key, expiry and window, written in the transaction of the event, so
-- its primary key makes "never twice for the same window and expiry" a
-- fact of the database, whichever processes sweep at once. A key whose
-- expiry changes (an operator's SQL) is warned again for its new expiry.

-- +goose Up
ALTER TABLE api_key_events DROP CONSTRAINT api_key_events_event_type_check;
ALTER TABLE api_key_events ADD CONSTRAINT api_key_events_event_type_check
    CHECK (event_type IN ('created', 'refreshed', 'revoked', 'used', 'expired', 'connection_closed', 'leaked',
                          'updated', 'disabled', 'enabled', 'expiring'));

CREATE TABLE api_key_expiry_warnings (
    api_key_id     uuid        NOT NULL REFERENCES api_keys (id),
    -- The expiry the warning was for.
    expires_at     timestamptz NOT NULL,
    -- The window: how long before expires_at (604800 or 86400).
    window_seconds bigint      NOT NULL CHECK (window_seconds > 0),
    warned_at      timestamptz NOT NULL,
    PRIMARY KEY (api_key_id, expires_at, window_seconds)
);

-- +goose Down
DROP TABLE api_key_expiry_warnings;
-- The audit trail is append-only: its `expiring` events stay, so the old
-- check is restored for new rows only (NOT VALID).
ALTER TABLE api_key_events DROP CONSTRAINT api_key_events_event_type_check;
ALTER TABLE api_key_events ADD CONSTRAINT api_key_events_event_type_check
    CHECK (event_type IN ('created', 'refreshed', 'revoked', 'used', 'expired', 'connection_closed', 'leaked',
                          'updated', 'disabled', 'enabled')) NOT VALID;
