-- name: CountWebhooksOfOwner :one
SELECT count(*) FROM webhooks WHERE owner_id = @owner_id;

-- name: InsertWebhook :one
INSERT INTO webhooks (owner_id, created_by, url, event_types, secret)
VALUES (@owner_id, @created_by, @url, @event_types, @secret)
RETURNING *;

-- name: ListWebhooksOfOwner :many
SELECT * FROM webhooks WHERE owner_id = @owner_id ORDER BY created_at, id;

-- name: GetWebhookOfOwner :one
SELECT * FROM webhooks WHERE id = @id AND owner_id = @owner_id;

-- name: DeleteWebhook :execrows
DELETE FROM webhooks WHERE id = @id AND owner_id = @owner_id;

-- name: ClaimDueDeliveries :many
-- Takes up to max_rows due deliveries for this replica: rows another
-- replica is claiming right now are skipped (SKIP LOCKED), and a claimed
-- row's next_attempt_at moves past the attempt's timeout, so no replica
-- claims it again while it is in flight. The caller commits at once and
-- sends outside the transaction.
WITH due AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.status = 'pending' AND d.next_attempt_at <= now()
    ORDER BY d.next_attempt_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries d
SET claim_id = gen_random_uuid(),
    attempts = d.attempts + 1,
    next_attempt_at = now() + make_interval(secs => @lease_seconds::float8)
FROM due
WHERE d.id = due.id
RETURNING d.id, d.webhook_id, d.event_id, d.claim_id, d.attempts, d.created_at;

-- name: InsertWebhookAttempt :exec
INSERT INTO webhook_attempts (delivery_id, claim_id) VALUES (@delivery_id, @claim_id);

-- name: ClaimedDeliveryTargets :many
-- What the claimed deliveries are sent to, and their events (actor_email
-- as ListEvents has it: the body is the event as /v1/events shows it).
SELECT d.id AS delivery_id, w.url, w.secret,
       e.id, e.api_key_id, e.owner_id, e.actor_user_id, e.actor_key_id, e.event_type,
       e.ip_address, e.user_agent, e.details, e.created_at, u.email AS actor_email
FROM webhook_deliveries d
JOIN webhooks w ON w.id = d.webhook_id
JOIN api_key_events e ON e.id = d.event_id
LEFT JOIN users u ON u.id = e.actor_user_id AND u.default_owner_id = e.owner_id
WHERE d.id = ANY (@ids::uuid[]);

-- name: FinishWebhookAttempt :execrows
-- Records an attempt's outcome, only by the replica that holds its claim.
UPDATE webhook_attempts
SET finished_at = now(), status_code = sqlc.narg(status_code), error = sqlc.narg(error), succeeded = @succeeded
WHERE claim_id = @claim_id AND finished_at IS NULL;

-- name: SettleDelivery :execrows
-- Moves a delivery on after an attempt: delivered, failed for good, or
-- due again at next_attempt_at.
UPDATE webhook_deliveries
SET status = @status,
    next_attempt_at = @next_attempt_at,
    finished_at = CASE WHEN @status::text = 'pending' THEN NULL ELSE now() END,
    claim_id = NULL
WHERE id = @id AND claim_id = @claim_id;

-- name: ListWebhookDeliveries :many
SELECT d.*, e.event_type FROM webhook_deliveries d
JOIN api_key_events e ON e.id = d.event_id
WHERE d.webhook_id = @webhook_id
  AND (sqlc.narg(after_created_at)::timestamptz IS NULL
       OR (d.created_at, d.id) < (sqlc.narg(after_created_at)::timestamptz, sqlc.narg(after_id)::uuid))
ORDER BY d.created_at DESC, d.id DESC
LIMIT @max_rows;

-- name: ListWebhookAttempts :many
SELECT * FROM webhook_attempts WHERE delivery_id = ANY (@delivery_ids::uuid[]) ORDER BY id;
