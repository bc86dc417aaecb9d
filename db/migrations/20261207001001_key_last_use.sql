-- Where a key was last used from: the client address (as the trusted
-- proxies tell it) and the User-Agent of the use that last_used_at
-- records, written by the same batched flush (TouchKeys), never one write
-- per request. NULL when unknown: a key never used, used before this
-- migration, or used through POST /v1/keys/verify without a client_ip (an
-- agent is never known there). The agent is capped like the audit trail's.
-- No notice: the change feed's trigger names the columns it announces.

-- +goose Up
ALTER TABLE api_keys
    ADD COLUMN last_used_ip inet,
    ADD COLUMN last_used_user_agent text CHECK (length(last_used_user_agent) <= 512);

-- +goose Down
ALTER TABLE api_keys DROP COLUMN last_used_user_agent, DROP COLUMN last_used_ip;
