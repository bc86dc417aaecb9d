-- Who created a key is the actor of its "created" event (every key has
-- exactly one, written in the transaction that inserts it). Reads of keys
-- find it by the key's id: this index reaches it at once, however many
-- other events the key has.

-- +goose Up
CREATE INDEX api_key_events_created_idx ON api_key_events (api_key_id) WHERE event_type = 'created';

-- +goose Down
DROP INDEX api_key_events_created_idx;
