package webhooks

import (
	"context"
	"net"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// Store is the database work of webhooks.
type Store interface {
	InsertWebhook(ctx context.Context, p *keyhub.Principal, in keyhub.WebhookInput, secret string) (keyhub.Webhook, error)
	ListWebhooks(ctx context.Context, ownerID uuid.UUID) ([]keyhub.Webhook, error)
	DeleteWebhook(ctx context.Context, p *keyhub.Principal, id uuid.UUID) error
	ListDeliveries(ctx context.Context, ownerID, webhookID uuid.UUID, page keyhub.Page) ([]keyhub.WebhookDelivery, string, error)
	ClaimDeliveries(ctx context.Context, max int, lease time.Duration) ([]keyhub.OutboundDelivery, error)
	FinishDelivery(ctx context.Context, o keyhub.DeliveryOutcome) (bool, error)
}

// Service implements keyhub.WebhookService: it checks what the store
// cannot (the endpoint against the policy, the event types) and makes
// the signing secret.
type Service struct {
	store    Store
	policy   Policy
	resolver Resolver
}

// NewService returns the service over store; resolver nil is the system's.
func NewService(store Store, policy Policy, resolver Resolver) *Service {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	return &Service{store: store, policy: policy, resolver: resolver}
}

var _ keyhub.WebhookService = (*Service)(nil)

// CreateWebhook registers an endpoint for the given event types and
// returns it with its signing secret, which is never shown again.
func (s *Service) CreateWebhook(ctx context.Context, p *keyhub.Principal, in keyhub.WebhookInput) (keyhub.NewWebhook, error) {
	if len(in.EventTypes) == 0 {
		return keyhub.NewWebhook{}, keyhub.Errorf(keyhub.CodeValidation, "event_types must name at least one event type")
	}
	types := make([]keyhub.EventType, 0, len(in.EventTypes))
	for _, t := range in.EventTypes {
		if !t.Valid() {
			return keyhub.NewWebhook{}, keyhub.Errorf(keyhub.CodeValidation, "event_types: %q is not an event type (the types of GET /v1/events, e.g. created, revoked, expired)", t)
		}
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	u, err := s.policy.CheckURL(ctx, s.resolver, in.URL)
	if err != nil {
		return keyhub.NewWebhook{}, err
	}
	secret := NewSecret()
	w, err := s.store.InsertWebhook(ctx, p, keyhub.WebhookInput{URL: u.String(), EventTypes: types}, secret)
	if err != nil {
		return keyhub.NewWebhook{}, err
	}
	return keyhub.NewWebhook{Webhook: w, Secret: secret}, nil
}

// ListWebhooks returns the owner's webhooks, oldest first.
func (s *Service) ListWebhooks(ctx context.Context, ownerID uuid.UUID) ([]keyhub.Webhook, error) {
	return s.store.ListWebhooks(ctx, ownerID)
}

// DeleteWebhook deletes one of the principal's owner's webhooks.
func (s *Service) DeleteWebhook(ctx context.Context, p *keyhub.Principal, id uuid.UUID) error {
	return s.store.DeleteWebhook(ctx, p, id)
}

// ListDeliveries returns a page of a webhook's deliveries with their attempts.
func (s *Service) ListDeliveries(ctx context.Context, ownerID, webhookID uuid.UUID, page keyhub.Page) ([]keyhub.WebhookDelivery, string, error) {
	return s.store.ListDeliveries(ctx, ownerID, webhookID, page)
}
