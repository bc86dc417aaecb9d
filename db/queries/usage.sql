-- name: AddKeyUsage :exec
-- Adds a batch of hourly counts. The rows are inserted in (key_id, hour)
-- order, so that processes flushing the same keys at once lock the rows
-- in one order and wait for each other instead of deadlocking. The
-- caller sends each (key_id, hour) once per batch.
WITH v AS (
    SELECT unnest(@key_ids::uuid[]) AS key_id, unnest(@hours::timestamptz[]) AS hour,
           unnest(@oks::bigint[]) AS ok, unnest(@refused::bigint[]) AS refused,
           unnest(@rate_limited::bigint[]) AS rate_limited
)
INSERT INTO api_key_usage AS u (key_id, hour, ok, refused, rate_limited)
SELECT v.key_id, v.hour, v.ok, v.refused, v.rate_limited FROM v
ORDER BY v.key_id, v.hour
ON CONFLICT (key_id, hour) DO UPDATE
SET ok = u.ok + EXCLUDED.ok,
    refused = u.refused + EXCLUDED.refused,
    rate_limited = u.rate_limited + EXCLUDED.rate_limited;

-- name: KeyUsage :many
-- The hours in [from, to) in which a key was used, oldest first.
SELECT hour, ok, refused, rate_limited FROM api_key_usage
WHERE key_id = @key_id AND hour >= @from_hour AND hour < @to_hour
ORDER BY hour;

-- name: TryLockUsagePrune :one
-- One pruning sweep at a time in the whole cluster.
SELECT pg_try_advisory_xact_lock(4823601136);

-- name: PruneKeyUsage :execrows
-- Deletes hours older than the retention.
DELETE FROM api_key_usage WHERE hour < @before;
