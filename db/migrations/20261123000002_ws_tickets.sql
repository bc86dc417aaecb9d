-- WebSocket tickets are self-verifying (HMAC); this table only remembers
-- which were used, so each works once. Rows are useless after expires_at
-- and are deleted from time to time.

-- +goose Up
CREATE TABLE ws_tickets (
    id         uuid        PRIMARY KEY,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ws_tickets_expires_at_idx ON ws_tickets (expires_at);

-- +goose Down
DROP TABLE ws_tickets;
