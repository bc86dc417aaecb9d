-- name: UpdateKeyControls :one
-- PATCH /v1/keys/{id}: what the owner may change of a key without
-- replacing it.
UPDATE api_keys
SET name = @name, metadata = @metadata, allowed_cidrs = @allowed_cidrs, scopes = @scopes
WHERE id = @id AND owner_id = @owner_id
RETURNING *;

-- name: SetKeyDisabled :one
-- Disables a key at disabled_at, or enables it with NULL.
UPDATE api_keys SET disabled_at = sqlc.narg(disabled_at)
WHERE id = @id AND owner_id = @owner_id
RETURNING *;

-- name: KeyDisabled :one
-- Whether the key or a key it was obtained through is disabled.
SELECT keyhub_key_disabled(@id::uuid)::boolean AS disabled;

-- name: DescendantsWithState :many
-- The keys obtained (transitively) through the given key, each with
-- whether it is now refused as disabled: what disabling or enabling the
-- key changes, for the writer to publish as the trigger announces it.
WITH RECURSIVE descendants (id) AS (
    SELECT p.key_id FROM api_key_parents p WHERE p.parent_id = @id::uuid
  UNION
    SELECT p.key_id FROM api_key_parents p JOIN descendants d ON p.parent_id = d.id
)
SELECT sqlc.embed(k), keyhub_key_disabled(k.id)::boolean AS disabled
FROM api_keys k JOIN descendants d ON d.id = k.id
WHERE k.id <> @id::uuid;
