package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/wire"
)

func (s *server) handleWebhookCreate(w http.ResponseWriter, r *http.Request) {
	var req api.CreateWebhookRequest
	if err := httpjson.Decode(w, r, &req, false); err != nil {
		httpjson.Error(w, r, err)
		return
	}
	in := keyhub.WebhookInput{URL: req.URL, EventTypes: make([]keyhub.EventType, 0, len(req.EventTypes))}
	for _, t := range req.EventTypes {
		in.EventTypes = append(in.EventTypes, keyhub.EventType(t))
	}
	created, err := s.deps.Webhooks.CreateWebhook(r.Context(), principal(r), in)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, api.CreatedWebhook{Webhook: wire.WebhookFrom(created.Webhook), Secret: created.Secret})
}

func (s *server) handleWebhookList(w http.ResponseWriter, r *http.Request) {
	hooks, err := s.deps.Webhooks.ListWebhooks(r.Context(), principal(r).OwnerID)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	out := api.WebhookList{Data: make([]api.Webhook, 0, len(hooks))}
	for _, h := range hooks {
		out.Data = append(out.Data, wire.WebhookFrom(h))
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (s *server) handleWebhookDelete(w http.ResponseWriter, r *http.Request) {
	id, err := webhookID(r)
	if err == nil {
		err = s.deps.Webhooks.DeleteWebhook(r.Context(), principal(r), id)
	}
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) handleWebhookDeliveries(w http.ResponseWriter, r *http.Request) {
	id, err := webhookID(r)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	page, err := pageOf(r)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	deliveries, next, err := s.deps.Webhooks.ListDeliveries(r.Context(), principal(r).OwnerID, id, page)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	out := api.WebhookDeliveryList{Data: make([]api.WebhookDelivery, 0, len(deliveries)), NextCursor: cursorOrNil(next)}
	for _, d := range deliveries {
		out.Data = append(out.Data, wire.WebhookDeliveryFrom(d))
	}
	httpjson.Write(w, http.StatusOK, out)
}

// webhookID reads the {id} of a webhook route; one that is not a UUID
// names no webhook.
func webhookID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		return uuid.UUID{}, keyhub.Errorf(keyhub.CodeNotFound, "webhook not found")
	}
	return id, nil
}
