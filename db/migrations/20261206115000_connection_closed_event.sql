-- An owner closing one of its daemons' WebSocket connections
-- (DELETE /v1/ws/connections/{id}) is an audit event of the key the
-- connection authenticated with.
-- +goose Up
ALTER TABLE api_key_events DROP CONSTRAINT api_key_events_event_type_check;
ALTER TABLE api_key_events ADD CONSTRAINT api_key_events_event_type_check
    CHECK (event_type IN ('created', 'refreshed', 'revoked', 'used', 'expired', 'connection_closed'));

-- +goose Down
-- The audit trail is append-only: the events stay, so the old check is
-- restored for new rows only (NOT VALID).
ALTER TABLE api_key_events DROP CONSTRAINT api_key_events_event_type_check;
ALTER TABLE api_key_events ADD CONSTRAINT api_key_events_event_type_check
    CHECK (event_type IN ('created', 'refreshed', 'revoked', 'used', 'expired')) NOT VALID;
