-- A key's lineage: the first key of its chain of refreshes, shared by all
-- its successors. What a key may spend (its request bucket, its refresh
-- budget) belongs to its lineage, so that a key refreshing itself does
-- not get a fresh bucket (internal/ratelimit, Limits.Principal).

-- +goose Up
ALTER TABLE api_keys ADD COLUMN lineage_id uuid;
-- Existing chains: from each first key (none replaced it) along replaced_by.
WITH RECURSIVE chain (id, lineage_id) AS (
    SELECT k.id, k.id FROM api_keys k
    WHERE NOT EXISTS (SELECT 1 FROM api_keys p WHERE p.replaced_by = k.id)
  UNION ALL
    SELECT k.replaced_by, c.lineage_id FROM chain c JOIN api_keys k ON k.id = c.id
    WHERE k.replaced_by IS NOT NULL
)
UPDATE api_keys k SET lineage_id = c.lineage_id FROM chain c WHERE k.id = c.id;
ALTER TABLE api_keys ALTER COLUMN lineage_id SET NOT NULL;

-- A key inserted without a lineage (a new key, or one an operator inserts
-- in SQL) starts its own: a column default cannot name the row's id.
-- +goose StatementBegin
CREATE FUNCTION keyhub_key_lineage_default() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.lineage_id := COALESCE(NEW.lineage_id, NEW.id);
    RETURN NEW;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER api_keys_lineage_default
    BEFORE INSERT ON api_keys
    FOR EACH ROW EXECUTE FUNCTION keyhub_key_lineage_default();

-- +goose Down
DROP TRIGGER api_keys_lineage_default ON api_keys;
DROP FUNCTION keyhub_key_lineage_default();
ALTER TABLE api_keys DROP COLUMN lineage_id;
