-- Leases of open WebSocket connections, so that a tier's connection cap
-- holds across every keyhub process on this database. A process inserts a
-- lease when it admits a connection (counting live leases of the same slot
-- under an advisory lock, so concurrent admissions on any process cannot
-- exceed the cap), renews all of its leases together on a heartbeat, and
-- deletes a lease when its connection ends. A process that dies without
-- deleting them loses its leases when they expire (WS_LEASE_TTL).

-- +goose Up
CREATE TABLE ws_connections (
    id         uuid        PRIMARY KEY,
    -- What the cap counts: the key of a key connection, the user of a
    -- JWT (dashboard) connection.
    slot_id    uuid        NOT NULL,
    owner_id   uuid        NOT NULL REFERENCES owners (id),
    -- The keyhub process holding the connection (random per start).
    process_id uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX ws_connections_slot_idx ON ws_connections (slot_id, expires_at);
CREATE INDEX ws_connections_process_idx ON ws_connections (process_id);
CREATE INDEX ws_connections_expires_idx ON ws_connections (expires_at);

-- +goose Down
DROP TABLE ws_connections;
