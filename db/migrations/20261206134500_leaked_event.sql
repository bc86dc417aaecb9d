-- A secret scanner (GitHub) reported the key in public
-- (POST /v1/leaks/github): a `leaked` event with where it was found.
-- +goose Up
ALTER TABLE api_key_events DROP CONSTRAINT api_key_events_event_type_check;
ALTER TABLE api_key_events ADD CONSTRAINT api_key_events_event_type_check
    CHECK (event_type IN ('created', 'refreshed', 'revoked', 'used', 'expired', 'connection_closed', 'leaked'));

-- +goose Down
-- The audit trail is append-only: the events stay, so the old check is
-- restored for new rows only (NOT VALID).
ALTER TABLE api_key_events DROP CONSTRAINT api_key_events_event_type_check;
ALTER TABLE api_key_events ADD CONSTRAINT api_key_events_event_type_check
    CHECK (event_type IN ('created', 'refreshed', 'revoked', 'used', 'expired', 'connection_closed')) NOT VALID;
