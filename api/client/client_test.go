package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub"
	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/api/client"
	"github.com/keyhub/keyhub/internal/apitest"
)

// newClient is a client of env whose every request is checked against
// openapi.yaml by rec.
func newClient(t testing.TB, env *apitest.Env, rec http.RoundTripper, opts ...client.Option) *client.Client {
	t.Helper()
	if rec == nil {
		rec = env.Server.Client().Transport
	}
	c, err := client.New(env.URL, append([]client.Option{client.WithHTTPClient(&http.Client{Transport: rec})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wantAPIError fails t unless err is an *client.Error with this status and code.
func wantAPIError(t testing.TB, err error, status int, code string) *client.Error {
	t.Helper()
	var apiErr *client.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("want API error %d %s, got %v", status, code, err)
	}
	if apiErr.Status != status || apiErr.Code != code || apiErr.Message == "" || apiErr.RequestID == "" {
		t.Fatalf("want API error %d %s with a message and request id, got %+v", status, code, apiErr)
	}
	return apiErr
}

// TestClientCoversEveryOperation calls every operation of openapi.yaml
// through the client against a real keyhub in dev mode; the recorder
// checks each request and answer against the spec, and that nothing was
// left out. It also checks what each call returns.
func TestClientCoversEveryOperation(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	const verifyToken = "verify-token-0123456789abcdefghijklmnop"
	env := apitest.NewDev(t, map[string]string{"VERIFY_TOKENS": verifyToken, "WEBHOOKS_ALLOW_INSECURE": "1"})
	rec := newSpecRecorder(t, doc, env.Server.Client().Transport)
	ctx := context.Background()
	anon := newClient(t, env, rec)

	if h, err := anon.Healthz(ctx); err != nil || h.Status != "ok" {
		t.Fatalf("healthz: %+v %v", h, err)
	}
	if h, err := anon.Readyz(ctx); err != nil || h.Status != "ready" {
		t.Fatalf("readyz: %+v %v", h, err)
	}
	if spec, err := anon.OpenAPI(ctx); err != nil || !bytes.Equal(spec, docs.OpenAPI) {
		t.Fatalf("openapi: %d bytes, %v", len(spec), err)
	}
	if jwks, err := anon.IdentityJWKS(ctx); err != nil || !bytes.Contains(jwks, []byte(`"ES256"`)) {
		t.Fatalf("identity jwks: %s %v", jwks, err)
	}
	if jwks, err := anon.DevJWKS(ctx); err != nil || !bytes.Contains(jwks, []byte(`"keys"`)) {
		t.Fatalf("dev jwks: %s %v", jwks, err)
	}
	tok, err := anon.DevToken(ctx, "cover@example.com")
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("dev token: %+v %v", tok, err)
	}
	_, err = anon.Me(ctx)
	wantAPIError(t, err, http.StatusUnauthorized, "MISSING_CREDENTIALS")

	user := newClient(t, env, rec, client.WithToken(tok.AccessToken))
	me, err := user.Me(ctx)
	if err != nil || me.Email != "cover@example.com" || me.AuthMethod != "jwt" {
		t.Fatalf("me: %+v %v", me, err)
	}
	created, err := user.CreateKey(ctx, api.CreateKeyRequest{Name: "cli", Scopes: []string{"keys:read", "keys:write", "events:read", "ws:connect"}})
	if err != nil || created.Secret == "" || created.Name != "cli" {
		t.Fatalf("create: %+v %v", created, err)
	}
	_, err = user.CreateKey(ctx, api.CreateKeyRequest{Name: "second"})
	wantAPIError(t, err, http.StatusConflict, "KEY_LIMIT_REACHED")

	operator := newClient(t, env, rec, client.WithToken(verifyToken))
	if v, err := operator.Verify(ctx, created.Secret, client.VerifyParams{Scope: "keys:read", Client: netip.MustParseAddr("203.0.113.7")}); err != nil || !v.Valid || v.KeyID != created.ID || v.Name != "cli" {
		t.Fatalf("verify: %+v %v", v, err)
	}
	if v, err := operator.Verify(ctx, "mk_typo", client.VerifyParams{}); err != nil || v.Valid || v.Code != "INVALID_API_KEY" {
		t.Fatalf("verify a typo: %+v %v", v, err)
	}
	_, err = user.Verify(ctx, created.Secret, client.VerifyParams{})
	wantAPIError(t, err, http.StatusForbidden, "OPERATOR_CREDENTIAL_REQUIRED")

	keyClient := newClient(t, env, rec, client.WithAPIKey(created.Secret))
	if me, err := keyClient.Me(ctx); err != nil || me.KeyID == nil || *me.KeyID != created.ID {
		t.Fatalf("me with key: %+v %v", me, err)
	}
	list, err := keyClient.ListKeys(ctx, client.ListKeysParams{Status: "active", Limit: 10})
	if err != nil || len(list.Data) != 1 || list.Data[0].ID != created.ID {
		t.Fatalf("list: %+v %v", list, err)
	}
	if got, err := keyClient.GetKey(ctx, created.ID); err != nil || got.Prefix != created.Prefix {
		t.Fatalf("get: %+v %v", got, err)
	}
	_, err = keyClient.GetKey(ctx, uuid.New())
	wantAPIError(t, err, http.StatusNotFound, "NOT_FOUND")

	updated, err := keyClient.UpdateKey(ctx, created.ID, api.UpdateKeyRequest{Name: api.Some("renamed"), Metadata: json.RawMessage(`{"team":"infra"}`), AllowedCIDRs: api.Some([]string{"127.0.0.0/8"}),
		Scopes: api.Some([]string{"keys:read", "keys:write", "events:read"})})
	if err != nil || updated.Name != "renamed" || string(updated.Metadata) != `{"team":"infra"}` || len(updated.AllowedCIDRs) != 1 || strings.Join(updated.Scopes, ",") != "keys:read,keys:write,events:read" {
		t.Fatalf("update: %+v %v", updated, err)
	}
	if updated, err = keyClient.UpdateKey(ctx, created.ID, api.UpdateKeyRequest{Scopes: api.Some(created.Scopes)}); err == nil {
		t.Fatalf("a key gave itself back ws:connect: %+v", updated)
	}
	wantAPIError(t, err, http.StatusForbidden, "INSUFFICIENT_SCOPE")
	if updated, err = user.UpdateKey(ctx, created.ID, api.UpdateKeyRequest{Scopes: api.Some(created.Scopes)}); err != nil || !slices.Equal(updated.Scopes, created.Scopes) {
		t.Fatalf("scopes given back by the session: %+v %v", updated, err)
	}
	if disabled, err := user.DisableKey(ctx, created.ID); err != nil || disabled.DisabledAt == nil {
		t.Fatalf("disable: %+v %v", disabled, err)
	}
	_, err = keyClient.Me(ctx)
	wantAPIError(t, err, http.StatusUnauthorized, "KEY_DISABLED")
	if enabled, err := user.EnableKey(ctx, created.ID); err != nil || enabled.DisabledAt != nil {
		t.Fatalf("enable: %+v %v", enabled, err)
	}
	leak := api.Some("notify")
	if policy, err := user.UpdateOwnerPolicy(ctx, api.OwnerPolicyUpdate{LeakPolicy: leak, MaxKeyLifetime: api.Null[int64]()}); err != nil || policy.LeakPolicy != "notify" || policy.MaxKeyLifetime != nil {
		t.Fatalf("update policy: %+v %v", policy, err)
	}
	if policy, err := user.OwnerPolicy(ctx); err != nil || policy.LeakPolicy != "notify" {
		t.Fatalf("policy: %+v %v", policy, err)
	}
	_, err = keyClient.OwnerPolicy(ctx)
	wantAPIError(t, err, http.StatusForbidden, "USER_SESSION_REQUIRED")

	grace := int64(60)
	refreshed, err := user.RefreshKey(ctx, created.ID, api.RefreshKeyRequest{GracePeriod: &grace})
	if err != nil || refreshed.NewKey.Secret == "" || refreshed.OldKey.ID != created.ID {
		t.Fatalf("refresh: %+v %v", refreshed, err)
	}
	events, err := user.ListKeyEvents(ctx, created.ID, client.EventParams{Types: []string{"created", "refreshed"}, Since: time.Now().Add(-time.Hour), Limit: 10})
	if err != nil || len(events.Data) != 2 {
		t.Fatalf("key events: %+v %v", events, err)
	}
	all, err := user.ListEvents(ctx, client.EventParams{Limit: 1})
	if err != nil || len(all.Data) != 1 || all.NextCursor == nil {
		t.Fatalf("events page 1: %+v %v", all, err)
	}
	if next, err := user.ListEvents(ctx, client.EventParams{Limit: 1, Cursor: *all.NextCursor, Until: time.Now().Add(time.Minute)}); err != nil || len(next.Data) != 1 || next.Data[0].ID == all.Data[0].ID {
		t.Fatalf("events page 2: %+v %v", next, err)
	}
	_, err = user.ListEvents(ctx, client.EventParams{Types: []string{"deleted"}})
	wantAPIError(t, err, http.StatusBadRequest, "VALIDATION_FAILED")
	if usage, err := user.KeyUsage(ctx, created.ID, time.Now().Add(-2*time.Hour), time.Time{}); err != nil || usage.KeyID != created.ID || len(usage.Hours) != 3 {
		t.Fatalf("usage: %+v %v", usage, err)
	}
	_, err = user.KeyUsage(ctx, created.ID, time.Now(), time.Now().Add(-time.Hour))
	wantAPIError(t, err, http.StatusBadRequest, "VALIDATION_FAILED")

	// Webhooks: a dashboard session's, never a key's.
	receiver := apitest.NewWebhookReceiver(t, "")
	hook, err := user.CreateWebhook(ctx, api.CreateWebhookRequest{URL: receiver.Server.URL + "/hook", EventTypes: []string{"revoked"}})
	if err != nil || !strings.HasPrefix(hook.Secret, "whsec_") {
		t.Fatalf("create webhook: %+v %v", hook, err)
	}
	_, err = keyClient.CreateWebhook(ctx, api.CreateWebhookRequest{URL: receiver.Server.URL, EventTypes: []string{"created"}})
	wantAPIError(t, err, http.StatusForbidden, "USER_SESSION_REQUIRED")
	if hooks, err := user.ListWebhooks(ctx); err != nil || len(hooks.Data) != 1 || hooks.Data[0].ID != hook.ID {
		t.Fatalf("list webhooks: %+v %v", hooks, err)
	}
	if page, err := user.ListWebhookDeliveries(ctx, hook.ID, 10, ""); err != nil || len(page.Data) != 0 {
		t.Fatalf("deliveries: %+v %v", page, err)
	}
	if err := user.DeleteWebhook(ctx, hook.ID); err != nil {
		t.Fatalf("delete webhook: %v", err)
	}
	wantAPIError(t, user.DeleteWebhook(ctx, hook.ID), http.StatusNotFound, "NOT_FOUND")

	// The WebSocket's REST companions and the upgrade (the Connector's),
	// while the first key still works (its grace ends with its successor).
	ticket, err := user.IssueWSTicket(ctx)
	if err != nil || ticket.ExpiresIn != 30 {
		t.Fatalf("ticket: %+v %v", ticket, err)
	}
	conns, err := user.ListWSConnections(ctx)
	if err != nil || conns.Data == nil || len(conns.Data) != 0 {
		t.Fatalf("connections: %+v %v", conns, err)
	}
	err = user.CloseWSConnection(ctx, uuid.NewString())
	wantAPIError(t, err, http.StatusNotFound, "NOT_FOUND")
	coverWebSocket(t, env, rec, created.Secret, user)

	revoked, err := user.RevokeKey(ctx, refreshed.NewKey.ID)
	if err != nil || revoked.Status != "revoked" || revoked.AlreadyRevoked {
		t.Fatalf("revoke: %+v %v", revoked, err)
	}
	if again, err := user.RevokeKey(ctx, refreshed.NewKey.ID); err != nil || !again.AlreadyRevoked {
		t.Fatalf("revoke again: %+v %v", again, err)
	}
	_, err = newClient(t, env, rec, client.WithAPIKey(refreshed.NewKey.Secret)).Me(ctx)
	wantAPIError(t, err, http.StatusUnauthorized, "KEY_REVOKED")

	// The seed service's single-key API, for another user.
	seedTok, err := anon.DevToken(ctx, "seed@example.com")
	if err != nil {
		t.Fatal(err)
	}
	seed := newClient(t, env, rec, client.WithToken(seedTok.AccessToken))
	_, err = seed.SeedGetKey(ctx)
	wantAPIError(t, err, http.StatusNotFound, "NOT_FOUND")
	name := "daemon"
	seedKey, err := seed.SeedCreateKey(ctx, api.SeedKeyRequest{Name: &name})
	if err != nil || seedKey.Name != name {
		t.Fatalf("seed create: %+v %v", seedKey, err)
	}
	if info, err := seed.SeedGetKey(ctx); err != nil || info.ID != seedKey.ID {
		t.Fatalf("seed get: %+v %v", info, err)
	}
	seedNew, err := seed.SeedRefreshKey(ctx, api.SeedKeyRequest{})
	if err != nil || !seedNew.PreviousKeyRevoked {
		t.Fatalf("seed refresh: %+v %v", seedNew, err)
	}
	if gone, err := seed.SeedRevokeKey(ctx); err != nil || gone.RevokedKeyPrefix != seedNew.Prefix {
		t.Fatalf("seed revoke: %+v %v", gone, err)
	}

	rec.checkCoverage(t, doc)
}

// TestClientRawResponse: WithRawResponse hands over the answer byte for byte.
func TestClientRawResponse(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	token := env.Token(t, "raw@example.com") // one token: a second could expire a second later
	c := newClient(t, env, nil, client.WithToken(token))
	var raw []byte
	me, err := c.Me(client.WithRawResponse(context.Background(), &raw))
	if err != nil {
		t.Fatal(err)
	}
	direct := env.Get(t, "/v1/me", token)
	if !bytes.Equal(raw, direct.Body) || me.Email != "raw@example.com" {
		t.Errorf("raw answer %s, want %s", raw, direct.Body)
	}
}

// TestClientNew refuses base URLs it could not use.
func TestClientNew(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "localhost:8080", "ftp://x", "http://", "://x"} {
		if _, err := client.New(bad); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	c, err := client.New("https://keys.example.com/")
	if err != nil || c.BaseURL() != "https://keys.example.com" {
		t.Errorf("New: %v %v", c, err)
	}
}
