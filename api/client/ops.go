package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
)

// The REST operations, in openapi.yaml's order. Each method's comment
// names its operationId; the coverage test checks that the spec and these
// methods agree.

// Healthz is GET /healthz (healthz): the process is up.
func (c *Client) Healthz(ctx context.Context) (api.Health, error) {
	return call[api.Health](ctx, c, request{method: http.MethodGet, path: "/healthz", want: http.StatusOK})
}

// Readyz is GET /readyz (readyz): the server can serve (its database answers).
func (c *Client) Readyz(ctx context.Context) (api.Health, error) {
	return call[api.Health](ctx, c, request{method: http.MethodGet, path: "/readyz", want: http.StatusOK})
}

// OpenAPI is GET /openapi.yaml (openapi): the API contract, as YAML.
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	var out []byte
	err := c.do(ctx, request{method: http.MethodGet, path: "/openapi.yaml", want: http.StatusOK}, &out)
	return out, err
}

// IdentityJWKS is GET /.well-known/jwks.json (identityJWKS): the public
// key that verifies the Keyhub-Identity tokens keyhub's gateway sends
// upstream, as a JWKS document (api/identity verifies them).
func (c *Client) IdentityJWKS(ctx context.Context) (json.RawMessage, error) {
	return call[json.RawMessage](ctx, c, request{method: http.MethodGet, path: "/.well-known/jwks.json", want: http.StatusOK})
}

// DevJWKS is GET /auth/v1/.well-known/jwks.json (devJWKS): a dev-mode
// server's public signing keys, as a JWKS document.
func (c *Client) DevJWKS(ctx context.Context) (json.RawMessage, error) {
	return call[json.RawMessage](ctx, c, request{method: http.MethodGet, path: "/auth/v1/.well-known/jwks.json", want: http.StatusOK})
}

// DevToken is POST /dev/token (devToken): a dev-mode server's access
// token for the user with this email.
func (c *Client) DevToken(ctx context.Context, email string) (api.DevToken, error) {
	return call[api.DevToken](ctx, c, request{method: http.MethodPost, path: "/dev/token", body: api.DevTokenRequest{Email: email}, want: http.StatusOK})
}

// VerifyParams is what a verification asks about a key besides the key.
type VerifyParams struct {
	// Scope is the scope the call needs; empty: none.
	Scope string
	// Client is the address the customer's request came from. The zero
	// Addr is unknown: a key restricted to networks is then refused.
	Client netip.Addr
}

// Verify is POST /v1/keys/verify (verifyKey): whether key may be used now
// (spending one request of it). The client's credential must be an
// operator's (WithToken: the service_role key or a VERIFY_TOKENS secret).
// An invalid key is not an error: the answer's Valid is false and Code
// says why.
func (c *Client) Verify(ctx context.Context, key string, p VerifyParams) (api.KeyVerification, error) {
	req := api.VerifyKeyRequest{Key: key}
	if p.Scope != "" {
		req.Scope = &p.Scope
	}
	if p.Client.IsValid() {
		ip := p.Client.String()
		req.ClientIP = &ip
	}
	return call[api.KeyVerification](ctx, c, request{method: http.MethodPost, path: "/v1/keys/verify", body: req, want: http.StatusOK})
}

// Me is GET /v1/me (getMe): who the credential belongs to.
func (c *Client) Me(ctx context.Context) (api.Me, error) {
	return call[api.Me](ctx, c, request{method: http.MethodGet, path: "/v1/me", want: http.StatusOK})
}

// ListKeysParams filters GET /v1/keys. Zero values are left out.
type ListKeysParams struct {
	// Status is active, revoked, expired or all (the server's default).
	Status string
	Limit  int
	// Cursor is a previous page's NextCursor.
	Cursor string
}

// ListKeys is GET /v1/keys (listKeys): one page of the owner's keys, newest first.
func (c *Client) ListKeys(ctx context.Context, p ListKeysParams) (api.KeyList, error) {
	q := url.Values{}
	setIf(q, "status", p.Status)
	setPage(q, p.Limit, p.Cursor)
	return call[api.KeyList](ctx, c, request{method: http.MethodGet, path: "/v1/keys", query: q, want: http.StatusOK})
}

// CreateKey is POST /v1/keys (createKey). The answer's Secret is shown
// this once.
func (c *Client) CreateKey(ctx context.Context, req api.CreateKeyRequest) (api.CreatedKey, error) {
	return call[api.CreatedKey](ctx, c, request{method: http.MethodPost, path: "/v1/keys", body: req, want: http.StatusCreated})
}

// GetKey is GET /v1/keys/{id} (getKey).
func (c *Client) GetKey(ctx context.Context, id uuid.UUID) (api.Key, error) {
	return call[api.Key](ctx, c, request{method: http.MethodGet, path: "/v1/keys/" + id.String(), want: http.StatusOK})
}

// RevokeKey is DELETE /v1/keys/{id} (revokeKey); revoking twice is not an
// error (AlreadyRevoked tells).
func (c *Client) RevokeKey(ctx context.Context, id uuid.UUID) (api.RevokedKey, error) {
	return call[api.RevokedKey](ctx, c, request{method: http.MethodDelete, path: "/v1/keys/" + id.String(), want: http.StatusOK})
}

// RefreshKey is POST /v1/keys/{id}/refresh (refreshKey): the replacement,
// with its secret shown this once, and the old key as it is now.
func (c *Client) RefreshKey(ctx context.Context, id uuid.UUID, req api.RefreshKeyRequest) (api.Refreshed, error) {
	return call[api.Refreshed](ctx, c, request{method: http.MethodPost, path: "/v1/keys/" + id.String() + "/refresh", body: req, want: http.StatusCreated})
}

// UpdateKey is PATCH /v1/keys/{id} (updateKey): changes the fields req
// sets (name, metadata, allowed_cidrs, scopes) and answers the key as it
// is now.
func (c *Client) UpdateKey(ctx context.Context, id uuid.UUID, req api.UpdateKeyRequest) (api.Key, error) {
	return call[api.Key](ctx, c, request{method: http.MethodPatch, path: "/v1/keys/" + id.String(), body: req, want: http.StatusOK})
}

// DisableKey is POST /v1/keys/{id}/disable (disableKey): the key, and the
// keys obtained through it, are refused with KEY_DISABLED until it is
// enabled again.
func (c *Client) DisableKey(ctx context.Context, id uuid.UUID) (api.Key, error) {
	return call[api.Key](ctx, c, request{method: http.MethodPost, path: "/v1/keys/" + id.String() + "/disable", want: http.StatusOK})
}

// EnableKey is POST /v1/keys/{id}/enable (enableKey): the key works again.
func (c *Client) EnableKey(ctx context.Context, id uuid.UUID) (api.Key, error) {
	return call[api.Key](ctx, c, request{method: http.MethodPost, path: "/v1/keys/" + id.String() + "/enable", want: http.StatusOK})
}

// OwnerPolicy is GET /v1/owner/policy (getOwnerPolicy): the owner's key
// policy. A dashboard session only (WithToken); a key is refused with
// USER_SESSION_REQUIRED.
func (c *Client) OwnerPolicy(ctx context.Context) (api.OwnerPolicy, error) {
	return call[api.OwnerPolicy](ctx, c, request{method: http.MethodGet, path: "/v1/owner/policy", want: http.StatusOK})
}

// UpdateOwnerPolicy is PATCH /v1/owner/policy (updateOwnerPolicy): fields
// left out of req stay as they are. A dashboard session only.
func (c *Client) UpdateOwnerPolicy(ctx context.Context, req api.OwnerPolicyUpdate) (api.OwnerPolicy, error) {
	return call[api.OwnerPolicy](ctx, c, request{method: http.MethodPatch, path: "/v1/owner/policy", body: req, want: http.StatusOK})
}

// EventParams filters the audit trail. Zero values are left out.
type EventParams struct {
	// Types are event types (created, refreshed, revoked, ...); none means all.
	Types        []string
	Since, Until time.Time
	Limit        int
	// Cursor is a previous page's NextCursor.
	Cursor string
}

func (p EventParams) query() url.Values {
	q := url.Values{}
	setIf(q, "type", strings.Join(p.Types, ","))
	for name, t := range map[string]time.Time{"since": p.Since, "until": p.Until} {
		if !t.IsZero() {
			q.Set(name, t.UTC().Format(time.RFC3339Nano))
		}
	}
	setPage(q, p.Limit, p.Cursor)
	return q
}

// ListKeyEvents is GET /v1/keys/{id}/events (listKeyEvents): one key's audit trail, newest first.
func (c *Client) ListKeyEvents(ctx context.Context, id uuid.UUID, p EventParams) (api.EventList, error) {
	return call[api.EventList](ctx, c, request{method: http.MethodGet, path: "/v1/keys/" + id.String() + "/events", query: p.query(), want: http.StatusOK})
}

// KeyUsage is GET /v1/keys/{id}/usage (getKeyUsage): the key's requests
// per hour from from to to; zero times leave the server's defaults (the
// last day).
func (c *Client) KeyUsage(ctx context.Context, id uuid.UUID, from, to time.Time) (api.KeyUsage, error) {
	q := url.Values{}
	for name, t := range map[string]time.Time{"from": from, "to": to} {
		if !t.IsZero() {
			q.Set(name, t.UTC().Format(time.RFC3339Nano))
		}
	}
	return call[api.KeyUsage](ctx, c, request{method: http.MethodGet, path: "/v1/keys/" + id.String() + "/usage", query: q, want: http.StatusOK})
}

// ListEvents is GET /v1/events (listEvents): the owner's audit trail, newest first.
func (c *Client) ListEvents(ctx context.Context, p EventParams) (api.EventList, error) {
	return call[api.EventList](ctx, c, request{method: http.MethodGet, path: "/v1/events", query: p.query(), want: http.StatusOK})
}

// CreateWebhook is POST /v1/webhooks (createWebhook): an endpoint for the
// owner's audit events; the answer's Secret is shown this once. Needs a
// dashboard session (WithToken).
func (c *Client) CreateWebhook(ctx context.Context, req api.CreateWebhookRequest) (api.CreatedWebhook, error) {
	return call[api.CreatedWebhook](ctx, c, request{method: http.MethodPost, path: "/v1/webhooks", body: req, want: http.StatusCreated})
}

// ListWebhooks is GET /v1/webhooks (listWebhooks): the owner's webhooks.
func (c *Client) ListWebhooks(ctx context.Context) (api.WebhookList, error) {
	return call[api.WebhookList](ctx, c, request{method: http.MethodGet, path: "/v1/webhooks", want: http.StatusOK})
}

// DeleteWebhook is DELETE /v1/webhooks/{id} (deleteWebhook).
func (c *Client) DeleteWebhook(ctx context.Context, id uuid.UUID) error {
	return c.do(ctx, request{method: http.MethodDelete, path: "/v1/webhooks/" + id.String(), want: http.StatusNoContent}, nil)
}

// ListWebhookDeliveries is GET /v1/webhooks/{id}/deliveries
// (listWebhookDeliveries): a page of the webhook's deliveries, newest
// first, with their attempts.
func (c *Client) ListWebhookDeliveries(ctx context.Context, id uuid.UUID, limit int, cursor string) (api.WebhookDeliveryList, error) {
	q := url.Values{}
	setPage(q, limit, cursor)
	return call[api.WebhookDeliveryList](ctx, c, request{method: http.MethodGet, path: "/v1/webhooks/" + id.String() + "/deliveries", query: q, want: http.StatusOK})
}

// IssueWSTicket is POST /v1/ws/tickets (issueWSTicket): a single-use
// ticket to open a WebSocket without credential headers.
func (c *Client) IssueWSTicket(ctx context.Context) (api.WSTicket, error) {
	return call[api.WSTicket](ctx, c, request{method: http.MethodPost, path: "/v1/ws/tickets", want: http.StatusCreated})
}

// SeedIssueWSTicket is POST /api/ws-ticket (issueSeedWSTicket): the seed
// ws-ticket service's way to get the same ticket, redeemed at GET /ws.
func (c *Client) SeedIssueWSTicket(ctx context.Context) (api.WSTicket, error) {
	return call[api.WSTicket](ctx, c, request{method: http.MethodPost, path: "/api/ws-ticket", want: http.StatusOK})
}

// ListWSConnections is GET /v1/ws/connections (listWSConnections): the
// owner's open WebSocket connections, oldest first.
func (c *Client) ListWSConnections(ctx context.Context) (api.WSConnectionList, error) {
	return call[api.WSConnectionList](ctx, c, request{method: http.MethodGet, path: "/v1/ws/connections", want: http.StatusOK})
}

// CloseWSConnection is DELETE /v1/ws/connections/{id}
// (closeWSConnection): the server closes it with 4002.
func (c *Client) CloseWSConnection(ctx context.Context, id string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: "/v1/ws/connections/" + url.PathEscape(id), want: http.StatusNoContent}, nil)
}

// seedPath is the seed service's single-key API.
const seedPath = "/api/v1/auth/api-keys"

// SeedGetKey is GET /api/v1/auth/api-keys (seedGetKey): the caller's
// newest active key, the seed service's way.
func (c *Client) SeedGetKey(ctx context.Context) (api.SeedKeyInfo, error) {
	return call[api.SeedKeyInfo](ctx, c, request{method: http.MethodGet, path: seedPath, want: http.StatusOK})
}

// SeedCreateKey is POST /api/v1/auth/api-keys (seedCreateKey).
func (c *Client) SeedCreateKey(ctx context.Context, req api.SeedKeyRequest) (api.SeedCreatedKey, error) {
	return call[api.SeedCreatedKey](ctx, c, request{method: http.MethodPost, path: seedPath, body: req, want: http.StatusCreated})
}

// SeedRevokeKey is DELETE /api/v1/auth/api-keys (seedRevokeKey).
func (c *Client) SeedRevokeKey(ctx context.Context) (api.SeedRevoked, error) {
	return call[api.SeedRevoked](ctx, c, request{method: http.MethodDelete, path: seedPath, want: http.StatusOK})
}

// SeedRefreshKey is POST /api/v1/auth/api-keys/refresh (seedRefreshKey):
// the old key is revoked at once.
func (c *Client) SeedRefreshKey(ctx context.Context, req api.SeedKeyRequest) (api.SeedRefreshedKey, error) {
	return call[api.SeedRefreshedKey](ctx, c, request{method: http.MethodPost, path: seedPath + "/refresh", body: req, want: http.StatusOK})
}

// call does req and decodes its answer as a T.
func call[T any](ctx context.Context, c *Client, req request) (T, error) {
	var out T
	err := c.do(ctx, req, &out)
	return out, err
}

func setIf(q url.Values, name, value string) {
	if value != "" {
		q.Set(name, value)
	}
}

func setPage(q url.Values, limit int, cursor string) {
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	setIf(q, "cursor", cursor)
}
