package keyhub

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// MaxWebhooksPerOwner bounds an owner's webhooks: every event is sent to
// each of them that wants it, so their number multiplies outbound work.
const MaxWebhooksPerOwner = 20

// Webhook is an owner's endpoint that receives its audit events. Its
// signing secret is not part of it: it is shown once, at creation.
type Webhook struct {
	ID         uuid.UUID
	OwnerID    uuid.UUID
	CreatedBy  uuid.UUID
	URL        string
	EventTypes []EventType
	CreatedAt  time.Time
}

// NewWebhook is a webhook with its signing secret (whsec_...): what a
// create returns, once.
type NewWebhook struct {
	Webhook Webhook
	Secret  string
}

// WebhookInput is a request for a new webhook: URL and types are checked
// by the service (the URL's scheme, host and addresses; known types).
type WebhookInput struct {
	URL        string
	EventTypes []EventType
}

// DeliveryStatus is where a webhook delivery is.
type DeliveryStatus string

// Delivery statuses, as stored in webhook_deliveries.status.
const (
	// DeliveryPending is not delivered yet: due now, in flight, or waiting
	// for its next attempt.
	DeliveryPending DeliveryStatus = "pending"
	// DeliveryDelivered got a 2xx answer.
	DeliveryDelivered DeliveryStatus = "delivered"
	// DeliveryFailed was retried until its retry window ended.
	DeliveryFailed DeliveryStatus = "failed"
)

// WebhookAttempt is one try at sending a delivery.
type WebhookAttempt struct {
	StartedAt time.Time
	// FinishedAt is nil while the attempt is in flight (or when the
	// replica sending it stopped before it knew the answer).
	FinishedAt *time.Time
	// StatusCode is the receiver's HTTP status; 0 when none came.
	StatusCode int
	// Error says why the attempt failed, in words; empty on success.
	Error     string
	Succeeded bool
}

// WebhookDelivery is one event on its way to one webhook.
type WebhookDelivery struct {
	ID            uuid.UUID
	WebhookID     uuid.UUID
	EventID       int64
	EventType     EventType
	Status        DeliveryStatus
	NextAttemptAt *time.Time // nil once delivered or failed
	CreatedAt     time.Time
	FinishedAt    *time.Time
	Attempts      []WebhookAttempt
}

// WebhookService manages an owner's webhooks (REST, dashboard sessions
// only) and shows their deliveries.
type WebhookService interface {
	// CreateWebhook refuses an endpoint the delivery client would refuse
	// to call (scheme, host, or an address outside what is allowed).
	CreateWebhook(ctx context.Context, p *Principal, in WebhookInput) (NewWebhook, error)
	ListWebhooks(ctx context.Context, ownerID uuid.UUID) ([]Webhook, error)
	// DeleteWebhook answers NOT_FOUND for another owner's webhook, as for
	// a missing one; its pending deliveries go with it.
	DeleteWebhook(ctx context.Context, p *Principal, id uuid.UUID) error
	// ListDeliveries returns a page of the webhook's deliveries, newest
	// first, each with its attempts, and the next cursor.
	ListDeliveries(ctx context.Context, ownerID, webhookID uuid.UUID, page Page) ([]WebhookDelivery, string, error)
}

// OutboundDelivery is a delivery a replica has claimed: what it sends, and
// the claim under which it records the outcome.
type OutboundDelivery struct {
	ID      uuid.UUID
	ClaimID uuid.UUID
	// Attempt counts this one: 1 for the first try.
	Attempt   int
	CreatedAt time.Time
	URL       string
	Secret    string
	Event     Event
}

// DeliveryOutcome is what became of one attempt, and so of its delivery.
type DeliveryOutcome struct {
	DeliveryID uuid.UUID
	ClaimID    uuid.UUID
	StatusCode int    // 0: no answer
	Error      string // empty on success
	// Status is the delivery's status after the attempt; NextAttemptAt is
	// when a pending delivery is due again.
	Status        DeliveryStatus
	NextAttemptAt time.Time
}
