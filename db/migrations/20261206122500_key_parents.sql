-- Which keys a key was obtained through, so that revoking a key ends every
-- key made with it, transitively (README, "Invariants"): whoever holds a
-- leaked key cannot plant a key that outlives the leak's revocation. An
-- edge key_id -> parent_id says: whoever held parent_id could get the
-- secret of key_id.
--   * a key created with an API key: an edge to that key;
--   * a refresh: the successor inherits the edges of the old key (whoever
--     could get the old key can get its successor), plus an edge to the
--     acting key when another key refreshed it (its holder got the
--     secret); the children of the old key, and of its predecessor when
--     the refresh ends that one's grace, pass to the successor (a refresh
--     is not a revocation).
-- The graph may have cycles (a child refreshing its parent makes each the
-- other's parent); a revoke walks it with UNION, which ends on them.
-- Nothing else reads the table: it changes no cache, so it sends no notice.

-- +goose Up
CREATE TABLE api_key_parents (
    key_id    uuid NOT NULL,
    parent_id uuid NOT NULL,
    -- Both ends belong to this owner (the foreign keys): a key acts only
    -- inside its own tenant.
    owner_id  uuid NOT NULL,
    PRIMARY KEY (key_id, parent_id),
    CONSTRAINT api_key_parents_key_fkey FOREIGN KEY (key_id, owner_id) REFERENCES api_keys (id, owner_id),
    CONSTRAINT api_key_parents_parent_fkey FOREIGN KEY (parent_id, owner_id) REFERENCES api_keys (id, owner_id),
    CONSTRAINT api_key_parents_not_self CHECK (key_id <> parent_id)
);
-- A revoke walks the edges from parent to children.
CREATE INDEX api_key_parents_parent_idx ON api_key_parents (parent_id);

-- Keys made before this migration, from the audit trail. The acting key of
-- each creation, but not of a key refreshing itself ...
INSERT INTO api_key_parents (key_id, parent_id, owner_id)
SELECT DISTINCT e.api_key_id, e.actor_key_id, e.owner_id
FROM api_key_events e
WHERE e.event_type = 'created' AND e.actor_key_id IS NOT NULL
  AND e.actor_key_id <> e.api_key_id
  AND (e.details ->> 'replaces') IS DISTINCT FROM e.actor_key_id::text
ON CONFLICT DO NOTHING;
-- ... a successor inherits the parents of the keys before it in its chain
-- (one statement, one snapshot: the edges of the first insert only) ...
INSERT INTO api_key_parents (key_id, parent_id, owner_id)
SELECT k.id, p.parent_id, k.owner_id
FROM api_keys k
JOIN api_keys earlier ON earlier.lineage_id = k.lineage_id AND earlier.created_at < k.created_at
JOIN api_key_parents p ON p.key_id = earlier.id
WHERE p.parent_id <> k.id
ON CONFLICT DO NOTHING;
-- ... and the children of a replaced key pass to the newest key of its chain.
INSERT INTO api_key_parents (key_id, parent_id, owner_id)
SELECT p.key_id, tip.id, p.owner_id
FROM api_key_parents p
JOIN api_keys parent ON parent.id = p.parent_id AND parent.replaced_by IS NOT NULL
JOIN api_keys tip ON tip.lineage_id = parent.lineage_id AND tip.replaced_by IS NULL
WHERE tip.id <> p.key_id
ON CONFLICT DO NOTHING;
DELETE FROM api_key_parents p
USING api_keys parent
WHERE parent.id = p.parent_id AND parent.replaced_by IS NOT NULL;

-- +goose Down
DROP TABLE api_key_parents;
