-- name: GetOwnerPolicy :one
SELECT max_key_lifetime_seconds, leak_policy FROM owners WHERE id = @id;

-- name: UpdateOwnerPolicy :one
-- Changes what is given (a NULL leak_policy keeps it; set_max_lifetime
-- says whether max_key_lifetime_seconds changes, since NULL is a value).
UPDATE owners
SET max_key_lifetime_seconds = CASE WHEN @set_max_lifetime::boolean
                                    THEN sqlc.narg(max_key_lifetime_seconds)::bigint
                                    ELSE max_key_lifetime_seconds END,
    leak_policy = COALESCE(sqlc.narg(leak_policy)::text, leak_policy)
WHERE id = @id
RETURNING max_key_lifetime_seconds, leak_policy;
