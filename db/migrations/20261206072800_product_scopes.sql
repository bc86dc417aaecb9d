-- +goose Up
-- Product scopes (PRODUCT_SCOPES) are the operator's, and the operator may
-- add or remove them at any restart: the database no longer pins the list
-- of names, only their shape, so that a key keeps the names it was given
-- and a removed scope simply stops matching (the server ignores stored
-- names it does not know). keyhub's own namespaces (keys:, events:, ws:)
-- hold only keyhub's four scopes.

-- +goose StatementBegin
CREATE FUNCTION scope_names_valid(names text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
  SELECT cardinality(names) <= 64 AND NOT EXISTS (
    SELECT 1 FROM unnest(names) AS n
    WHERE n IS NULL
       OR length(n) > 64
       OR n !~ '^[a-z][a-z0-9_.-]*:[a-z0-9_.*-]+$'
       OR (split_part(n, ':', 1) IN ('keys', 'events', 'ws')
           AND n NOT IN ('keys:read', 'keys:write', 'events:read', 'ws:connect'))
  )
$$;
-- +goose StatementEnd

ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_check CHECK (scope_names_valid(scopes));

-- +goose Down
-- Keys lose their product scopes: the old check allows keyhub's four only.
UPDATE api_keys
SET scopes = ARRAY(SELECT s FROM unnest(scopes) AS s
                   WHERE s IN ('keys:read', 'keys:write', 'events:read', 'ws:connect'))
WHERE NOT scopes <@ ARRAY['keys:read', 'keys:write', 'events:read', 'ws:connect']::text[];
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_check
  CHECK (scopes <@ ARRAY['keys:read', 'keys:write', 'events:read', 'ws:connect']::text[]);
DROP FUNCTION scope_names_valid(text[]);
