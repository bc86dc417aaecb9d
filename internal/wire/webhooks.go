package wire

import (
	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// WebhookFrom describes a webhook, without its secret.
func WebhookFrom(w keyhub.Webhook) api.Webhook {
	out := api.Webhook{ID: w.ID, URL: w.URL, EventTypes: make([]string, 0, len(w.EventTypes)), CreatedAt: api.Timestamp(w.CreatedAt)}
	for _, t := range w.EventTypes {
		out.EventTypes = append(out.EventTypes, string(t))
	}
	return out
}

// WebhookDeliveryFrom describes a delivery and its attempts.
func WebhookDeliveryFrom(d keyhub.WebhookDelivery) api.WebhookDelivery {
	out := api.WebhookDelivery{
		ID: d.ID, EventID: d.EventID, EventType: string(d.EventType), Status: string(d.Status),
		NextAttemptAt: timestampOrNil(d.NextAttemptAt), CreatedAt: api.Timestamp(d.CreatedAt), FinishedAt: timestampOrNil(d.FinishedAt),
		Attempts: make([]api.WebhookAttempt, 0, len(d.Attempts)),
	}
	for _, a := range d.Attempts {
		attempt := api.WebhookAttempt{StartedAt: api.Timestamp(a.StartedAt), FinishedAt: timestampOrNil(a.FinishedAt), Succeeded: a.Succeeded}
		if a.StatusCode != 0 {
			code := a.StatusCode
			attempt.StatusCode = &code
		}
		if a.Error != "" {
			msg := a.Error
			attempt.Error = &msg
		}
		out.Attempts = append(out.Attempts, attempt)
	}
	return out
}
