-- Webhooks: an owner's HTTPS endpoints that receive its audit events,
-- signed per the Standard Webhooks specification (internal/webhooks).
--
-- The outbox (webhook_deliveries) is filled by a trigger on api_key_events,
-- so a delivery is written in the same transaction as its event, whoever
-- writes it: the key writes, the expiry sweeper, the leak intake, an
-- operator's SQL. An event that rolls back leaves no delivery; one that
-- commits always has its deliveries. Any replica delivers: it claims due
-- rows with FOR UPDATE SKIP LOCKED and pushes their next_attempt_at past
-- its attempt's timeout (a lease) under a fresh claim_id, so no other
-- replica takes the row while it is being sent; a replica that dies
-- mid-attempt leaves the row to be claimed again when the lease ends.

-- +goose Up
CREATE TABLE webhooks (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id    uuid        NOT NULL REFERENCES owners (id),
    -- The dashboard user who registered it.
    created_by  uuid        NOT NULL REFERENCES users (id),
    url         text        NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    event_types text[]      NOT NULL CHECK (cardinality(event_types) >= 1),
    -- whsec_ + base64 of the HMAC key: the sender must sign with it, so it
    -- is stored as is (like every Standard Webhooks sender); it is shown
    -- once, at creation, and never listed.
    secret      text        NOT NULL CHECK (secret LIKE 'whsec\_%'),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_owner_idx ON webhooks (owner_id, created_at);

CREATE TABLE webhook_deliveries (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    webhook_id      uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    owner_id        uuid        NOT NULL REFERENCES owners (id),
    event_id        bigint      NOT NULL REFERENCES api_key_events (id),
    -- pending until a 2xx (delivered) or until the retry window ends (failed).
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- The claim of the attempt in flight: only its owner records its result.
    claim_id        uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    CONSTRAINT webhook_deliveries_once UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_listing_idx ON webhook_deliveries (webhook_id, created_at DESC, id DESC);

CREATE TABLE webhook_attempts (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  uuid        NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    claim_id     uuid        NOT NULL UNIQUE,
    started_at   timestamptz NOT NULL DEFAULT now(),
    -- NULL while in flight, and forever for an attempt whose replica died.
    finished_at  timestamptz,
    status_code  integer,
    -- Why it failed, in words (never the receiver's body).
    error        text        CHECK (length(error) <= 500),
    succeeded    boolean     NOT NULL DEFAULT false
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

-- +goose StatementBegin
CREATE FUNCTION keyhub_webhook_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, owner_id, event_id)
    SELECT w.id, NEW.owner_id, NEW.id
    FROM webhooks w
    WHERE w.owner_id = NEW.owner_id AND NEW.event_type = ANY (w.event_types);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER api_key_events_webhook_outbox
    AFTER INSERT ON api_key_events
    FOR EACH ROW
    EXECUTE FUNCTION keyhub_webhook_outbox();

-- +goose Down
DROP TRIGGER api_key_events_webhook_outbox ON api_key_events;
DROP FUNCTION keyhub_webhook_outbox();
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
