package api

import (
	"time"

	"github.com/google/uuid"
)

// The webhooks a dashboard user registers, and their deliveries.

// CreateWebhookRequest is the body of POST /v1/webhooks.
type CreateWebhookRequest struct {
	// URL is the HTTPS endpoint that receives the events.
	URL string `json:"url"`
	// EventTypes are the audit event types sent to it (those of GET
	// /v1/events), at least one.
	EventTypes []string `json:"event_types"`
}

// Webhook is a registered endpoint, without its secret.
type Webhook struct {
	ID         uuid.UUID `json:"id"`
	URL        string    `json:"url"`
	EventTypes []string  `json:"event_types"`
	CreatedAt  time.Time `json:"created_at"`
}

// CreatedWebhook answers POST /v1/webhooks: the webhook and its signing
// secret (whsec_...), shown this once.
type CreatedWebhook struct {
	Webhook
	Secret string `json:"secret"`
}

// WebhookList is the body of GET /v1/webhooks.
type WebhookList struct {
	Data []Webhook `json:"data"`
}

// WebhookAttempt is one try at sending a delivery.
type WebhookAttempt struct {
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	// StatusCode is the receiver's HTTP status, null when none came.
	StatusCode *int `json:"status_code"`
	// Error says why the attempt failed, null on success.
	Error     *string `json:"error"`
	Succeeded bool    `json:"succeeded"`
}

// WebhookDelivery is one event on its way to a webhook; its id is the
// webhook-id header the receiver dedupes by.
type WebhookDelivery struct {
	ID        uuid.UUID `json:"id"`
	EventID   int64     `json:"event_id"`
	EventType string    `json:"event_type"`
	// Status is pending, delivered or failed.
	Status        string           `json:"status"`
	NextAttemptAt *time.Time       `json:"next_attempt_at"`
	CreatedAt     time.Time        `json:"created_at"`
	FinishedAt    *time.Time       `json:"finished_at"`
	Attempts      []WebhookAttempt `json:"attempts"`
}

// WebhookDeliveryList is a page of deliveries, newest first.
type WebhookDeliveryList struct {
	Data       []WebhookDelivery `json:"data"`
	NextCursor *string           `json:"next_cursor"`
}
