-- Per-owner key policy (PATCH /v1/owner/policy):
--   * max_key_lifetime_seconds: the longest a key created or refreshed
--     for this owner may live; NULL is no limit. Lowering it leaves the
--     keys that exist as they are (README, "Owner policy").
--   * leak_policy: what a report of a leaked key (GitHub secret scanning)
--     does to the key: revoke it (the default) or only notify.
-- Both live on the owner: they are the tenant's rules, whoever acts. The
-- owners trigger announces the update like any owner change.

-- +goose Up
ALTER TABLE owners
    ADD COLUMN max_key_lifetime_seconds bigint
        CHECK (max_key_lifetime_seconds BETWEEN 60 AND 315360000),
    ADD COLUMN leak_policy text NOT NULL DEFAULT 'revoke'
        CHECK (leak_policy IN ('revoke', 'notify'));

-- +goose Down
ALTER TABLE owners DROP COLUMN leak_policy, DROP COLUMN max_key_lifetime_seconds;
