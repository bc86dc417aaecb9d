package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/apitest"
)

// devEnv runs keyhub in dev mode, where it serves its own JWKS. Its JWKS
// URL points at a port nothing listens on: these tests sign tokens with
// apitest's issuer, so dev mode here only mounts the route.
func devEnv(t *testing.T) *apitest.Env {
	t.Helper()
	return apitest.New(t, map[string]string{
		"KEYHUB_DEV":        "1",
		"SUPABASE_JWKS_URL": "",
		"LISTEN_ADDR":       "127.0.0.1:1",
	})
}

// TestOpenAPIEveryRouteIsDocumented walks the router: every method and
// path it serves is in openapi.yaml, and every operation of openapi.yaml is
// routed, the WebSocket ones included: the app always mounts them.
func TestOpenAPIEveryRouteIsDocumented(t *testing.T) {
	t.Parallel()
	env := devEnv(t)
	mux, ok := env.App.Handler.(chi.Routes)
	if !ok {
		t.Fatalf("app handler is %T, not a chi.Routes", env.App.Handler)
	}
	documented := map[string]bool{}
	for path, item := range spec.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	routed := map[string]bool{}
	err := chi.Walk(mux, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		// Route("/x") + Get("/") registers "/x/"; clients call "/x",
		// unless the document names the path with its slash.
		if len(route) > 1 && !documented[method+" "+route] {
			route = strings.TrimSuffix(route, "/")
		}
		// A trailing wildcard (the rest of the path, slashes included) is
		// documented as one path parameter named after what it holds.
		if rest, ok := strings.CutSuffix(route, "/*"); ok && rest == "/v1/authz" {
			route = rest + "/{original_path}"
		}
		routed[method+" "+route] = true
		return nil
	})
	if err != nil {
		t.Fatalf("walk: %v", err)
	}

	for r := range documented {
		if !routed[r] {
			t.Errorf("%s is documented but not routed", r)
		}
	}
	for r := range routed {
		if !documented[r] {
			t.Errorf("%s is routed but not in openapi.yaml", r)
		}
	}
}

// TestOpenAPIServesSpec: GET /openapi.yaml is the file in the repository.
func TestOpenAPIServesSpec(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	want, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	got := env.Get(t, "/openapi.yaml", "").Want(t, http.StatusOK, "")
	if !bytes.Equal(got.Body, want) {
		t.Errorf("GET /openapi.yaml serves %d bytes that differ from %s (%d bytes)", len(got.Body), specPath, len(want))
	}
	if ct := got.Header.Get("Content-Type"); ct != "application/yaml" {
		t.Errorf("Content-Type = %q", ct)
	}
	env.Post(t, "/openapi.yaml", "", nil).Want(t, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
}

// TestOpenAPIHealth covers the public routes; the observer checks them.
func TestOpenAPIHealth(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	env.Get(t, "/healthz", "").Want(t, http.StatusOK, "")
	env.Get(t, "/readyz", "").Want(t, http.StatusOK, "")
	env.Post(t, "/healthz", "", nil).Want(t, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
	env.Delete(t, "/readyz", "").Want(t, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
	// RFC 9110: a 405 says what is allowed, here and under /v1's subrouter.
	for path, want := range map[string]string{"/healthz": "GET", "/v1/keys": "GET, POST", "/v1/keys/" + uuid.NewString(): "GET, PATCH, DELETE"} {
		if got := env.Do(t, apitest.Request{Method: http.MethodPut, Path: path}).Want(t, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED").Header.Get("Allow"); got != want {
			t.Errorf("PUT %s: Allow %q, want %q", path, got, want)
		}
	}
	env.Get(t, "/nowhere", "").Want(t, http.StatusNotFound, "NOT_FOUND")
	// Outside dev mode the JWKS route does not exist.
	env.Get(t, "/auth/v1/.well-known/jwks.json", "").Want(t, http.StatusNotFound, "NOT_FOUND")

	dev := devEnv(t)
	dev.Get(t, "/auth/v1/.well-known/jwks.json", "").Want(t, http.StatusOK, "")
}

// TestOpenAPIKeys calls every /v1 key and event route, happy and not.
func TestOpenAPIKeys(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "a@example.com")

	// /v1/me
	env.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "")
	env.Get(t, "/v1/me", "").Want(t, http.StatusUnauthorized, "MISSING_CREDENTIALS")
	env.Do(t, apitest.Request{Method: http.MethodGet, Path: "/v1/me", Headers: map[string]string{"X-API-Key": "not-a-key"}}).
		Want(t, http.StatusUnauthorized, "INVALID_API_KEY")
	env.Get(t, "/v1/me", "not.a.jwt").Want(t, http.StatusUnauthorized, "INVALID_TOKEN")
	unknown, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	env.Get(t, "/v1/me", unknown).Want(t, http.StatusUnauthorized, "UNKNOWN_API_KEY")

	// POST /v1/keys
	var created api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "ci", "expires_in": 3600}).Want(t, http.StatusCreated, "").JSON(t, &created)
	env.Get(t, "/v1/me", created.Secret).Want(t, http.StatusOK, "")
	env.Do(t, apitest.Request{Method: http.MethodGet, Path: "/v1/me", Cred: jwt, Headers: map[string]string{"X-API-Key": created.Secret}}).
		Want(t, http.StatusBadRequest, "AMBIGUOUS_CREDENTIALS")
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "second"}).Want(t, http.StatusConflict, "KEY_LIMIT_REACHED")
	env.Post(t, "/v1/keys", jwt, "{").Want(t, http.StatusBadRequest, "INVALID_JSON")
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": strings.Repeat("x", 70<<10)}).Want(t, http.StatusRequestEntityTooLarge, "BODY_TOO_LARGE")
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "x", "colour": "red"}).Want(t, http.StatusBadRequest, "INVALID_JSON")
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "   "}).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "x", "scopes": []string{}}).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "x", "scopes": []string{"root"}}).Want(t, http.StatusBadRequest, "INVALID_SCOPE")
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "x", "expires_in": 5}).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	env.Post(t, "/v1/keys", "", map[string]any{"name": "x"}).Want(t, http.StatusUnauthorized, "MISSING_CREDENTIALS")

	// A key limited to events:read, of another tenant.
	other := env.Token(t, "b@example.com")
	var narrow api.CreatedKey
	env.Post(t, "/v1/keys", other, map[string]any{"name": "reader", "scopes": []string{"events:read"}, "expires_at": time.Now().Add(time.Hour)}).
		Want(t, http.StatusCreated, "").JSON(t, &narrow)
	env.Post(t, "/v1/keys", narrow.Secret, map[string]any{"name": "x"}).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")

	// GET /v1/keys
	var page api.KeyList
	env.Get(t, "/v1/keys?limit=1&status=active", jwt).Want(t, http.StatusOK, "").JSON(t, &page)
	if len(page.Data) != 1 || page.Data[0].ID != created.ID {
		t.Fatalf("list: %+v", page)
	}
	env.Get(t, "/v1/keys?status=gone", jwt).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	env.Get(t, "/v1/keys?limit=0", jwt).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	env.Get(t, "/v1/keys?cursor=bogus", jwt).Want(t, http.StatusBadRequest, "INVALID_CURSOR")
	env.Get(t, "/v1/keys", narrow.Secret).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")

	// GET /v1/keys/{id}
	keyPath := "/v1/keys/" + created.ID.String()
	env.Get(t, keyPath, jwt).Want(t, http.StatusOK, "")
	env.Get(t, keyPath, other).Want(t, http.StatusNotFound, "NOT_FOUND")
	env.Get(t, "/v1/keys/not-a-uuid", jwt).Want(t, http.StatusNotFound, "NOT_FOUND")

	// POST /v1/keys/{id}/refresh
	var refreshed api.Refreshed
	env.Post(t, keyPath+"/refresh", jwt, map[string]any{"name": "ci-2", "grace_period": 60}).Want(t, http.StatusCreated, "").JSON(t, &refreshed)
	env.Post(t, keyPath+"/refresh", jwt, nil).Want(t, http.StatusConflict, "KEY_ALREADY_REFRESHED")
	newPath := "/v1/keys/" + refreshed.NewKey.ID.String()
	env.Post(t, newPath+"/refresh", jwt, map[string]any{"grace_period": -1}).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	env.Post(t, newPath+"/refresh", other, nil).Want(t, http.StatusNotFound, "NOT_FOUND")

	// DELETE /v1/keys/{id}
	env.Delete(t, newPath, jwt).Want(t, http.StatusOK, "")
	var again api.RevokedKey
	env.Delete(t, newPath, jwt).Want(t, http.StatusOK, "").JSON(t, &again)
	if !again.AlreadyRevoked {
		t.Errorf("second revoke: already_revoked = false")
	}
	env.Post(t, newPath+"/refresh", jwt, nil).Want(t, http.StatusConflict, "KEY_NOT_ACTIVE")
	env.Delete(t, newPath, other).Want(t, http.StatusNotFound, "NOT_FOUND")
	env.Get(t, newPath, refreshed.NewKey.Secret).Want(t, http.StatusUnauthorized, "KEY_REVOKED")

	// GET /v1/keys/{id}/events
	var events api.EventList
	env.Get(t, keyPath+"/events?limit=10", jwt).Want(t, http.StatusOK, "").JSON(t, &events)
	if len(events.Data) == 0 {
		t.Errorf("no events for %s", created.ID)
	}
	env.Get(t, keyPath+"/events", other).Want(t, http.StatusNotFound, "NOT_FOUND")
	env.Get(t, keyPath+"/events?until=yesterday", jwt).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")

	// GET /v1/events
	since := url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	var all api.EventList
	env.Get(t, "/v1/events?type=created,revoked&since="+since+"&limit=2", jwt).Want(t, http.StatusOK, "").JSON(t, &all)
	if all.NextCursor == nil {
		t.Fatalf("want a second page: %+v", all)
	}
	env.Get(t, "/v1/events?cursor="+url.QueryEscape(*all.NextCursor), jwt).Want(t, http.StatusOK, "")
	env.Get(t, "/v1/events", narrow.Secret).Want(t, http.StatusOK, "")
	env.Get(t, "/v1/events?type=deleted", jwt).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	env.Get(t, "/v1/events?since=today", jwt).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	env.Get(t, "/v1/events", "").Want(t, http.StatusUnauthorized, "MISSING_CREDENTIALS")
}

// TestOpenAPISeed calls the seed service's single-key API.
func TestOpenAPISeed(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "seed@example.com")
	const base = "/api/v1/auth/api-keys"

	env.Get(t, base, jwt).Want(t, http.StatusNotFound, "NOT_FOUND")
	env.Post(t, base+"/refresh", jwt, nil).Want(t, http.StatusNotFound, "NOT_FOUND")
	env.Delete(t, base, jwt).Want(t, http.StatusNotFound, "NOT_FOUND")
	env.Post(t, base, jwt, map[string]any{"label": "x"}).Want(t, http.StatusBadRequest, "INVALID_JSON")

	var created api.SeedCreatedKey
	env.Post(t, base, jwt, nil).Want(t, http.StatusCreated, "").JSON(t, &created)
	if created.Name != "default" {
		t.Errorf("name = %q", created.Name)
	}
	env.Post(t, base, jwt, map[string]any{"name": "daemon"}).Want(t, http.StatusConflict, "KEY_ALREADY_EXISTS")
	// The seed's header, and the trailing slash chi also routes.
	env.Do(t, apitest.Request{Method: http.MethodGet, Path: base + "/", Headers: map[string]string{"X-Makima-Api-Key": created.Key}}).
		Want(t, http.StatusOK, "")
	env.Get(t, base, "").Want(t, http.StatusUnauthorized, "MISSING_CREDENTIALS")

	var refreshed api.SeedRefreshedKey
	env.Post(t, base+"/refresh", jwt, map[string]any{"name": "daemon"}).Want(t, http.StatusOK, "").JSON(t, &refreshed)
	if !refreshed.PreviousKeyRevoked || refreshed.Name != "daemon" {
		t.Errorf("refresh: %+v", refreshed)
	}
	env.Post(t, base+"/refresh", jwt, map[string]any{"name": ""}).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")

	env.Delete(t, base, refreshed.Key).Want(t, http.StatusOK, "")
	env.Delete(t, base, jwt).Want(t, http.StatusNotFound, "NOT_FOUND")
}

// TestOpenAPIWebSocketRoutes covers the WebSocket routes (the app always
// mounts them). Refusals before the upgrade go through env.Do (and the
// observer); the 101 itself needs a WebSocket client.
func TestOpenAPIWebSocketRoutes(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "ws@example.com")
	// POST /v1/ws/tickets
	var ticket struct {
		Ticket string `json:"ticket"`
	}
	env.Post(t, "/v1/ws/tickets", jwt, nil).Want(t, http.StatusCreated, "").JSON(t, &ticket)
	env.Post(t, "/v1/ws/tickets", "", nil).Want(t, http.StatusUnauthorized, "MISSING_CREDENTIALS")

	var narrow api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "no-ws", "scopes": []string{"keys:read"}}).Want(t, http.StatusCreated, "").JSON(t, &narrow)
	env.Post(t, "/v1/ws/tickets", narrow.Secret, nil).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")

	// GET /v1/ws and /ws/daemon: refusals before the upgrade.
	env.Get(t, "/v1/ws", jwt).Want(t, http.StatusUpgradeRequired, "UPGRADE_REQUIRED")
	handshake := func(extra ...string) map[string]string {
		h := map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
		for i := 0; i+1 < len(extra); i += 2 {
			h[extra[i]] = extra[i+1]
		}
		return h
	}
	env.Do(t, apitest.Request{Method: http.MethodGet, Path: "/v1/ws?ticket=wst_bogus", Headers: handshake()}).Want(t, http.StatusUnauthorized, "INVALID_TICKET")
	env.Do(t, apitest.Request{Method: http.MethodGet, Path: "/ws/daemon", Cred: narrow.Secret, Headers: handshake()}).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")
	env.Do(t, apitest.Request{Method: http.MethodGet, Path: "/ws/daemon", Cred: jwt, Headers: handshake("Origin", "https://evil.example")}).
		Want(t, http.StatusForbidden, "ORIGIN_NOT_ALLOWED")

	// A real connection, with the ticket, then listed and closed.
	wsURL := "ws" + strings.TrimPrefix(env.URL, "http") + "/v1/ws?ticket=" + url.QueryEscape(ticket.Ticket)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: env.Server.Client()})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.CloseNow()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %d", resp.StatusCode)
	}

	// GET /v1/ws/connections
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	// The hub registers the connection just after the 101 is sent.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		env.Get(t, "/v1/ws/connections", jwt).Want(t, http.StatusOK, "").JSON(t, &list)
		if len(list.Data) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(list.Data) != 1 {
		t.Fatalf("connections: %+v", list)
	}
	env.Get(t, "/v1/ws/connections", narrow.Secret).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")

	// DELETE /v1/ws/connections/{id}
	other := env.Token(t, "ws-other@example.com")
	env.Delete(t, "/v1/ws/connections/"+list.Data[0].ID, other).Want(t, http.StatusNotFound, "NOT_FOUND")
	env.Delete(t, "/v1/ws/connections/"+list.Data[0].ID, jwt).Want(t, http.StatusNoContent, "")
	env.Delete(t, "/v1/ws/connections/not-a-uuid", jwt).Want(t, http.StatusNotFound, "NOT_FOUND")
}

// TestOpenAPIAuthz calls forward auth's answers (the observer checks them
// against the spec): allowed, every refusal, the refuse_as=403 form and the
// path form.
func TestOpenAPIAuthz(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"PRODUCT_SCOPES": "app:read", "RATE_LIMIT_TIER_RPM": "free=3"})
	jwt := env.Token(t, "authz@example.com")
	var reader api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "reader", "scopes": []string{"app:read"}}).Want(t, http.StatusCreated, "").JSON(t, &reader)
	env.Get(t, "/v1/authz?scope=app:read&audience=tasks", reader.Secret).Want(t, http.StatusOK, "")
	for _, method := range []string{http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		// One user per method: each has its own bucket.
		env.Do(t, apitest.Request{Method: method, Path: "/v1/authz/tasks", Cred: env.Token(t, method+"@example.com")}).Want(t, http.StatusOK, "")
	}
	env.Get(t, "/v1/authz?scope=app:write", reader.Secret).Want(t, http.StatusBadRequest, "INVALID_SCOPE")
	env.Get(t, "/v1/authz?scopes=app:read", reader.Secret).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	env.Get(t, "/v1/authz", "").Want(t, http.StatusUnauthorized, "MISSING_CREDENTIALS")
	env.Get(t, "/v1/authz?scope=keys:write", reader.Secret).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")
	env.Get(t, "/v1/authz", reader.Secret).Want(t, http.StatusOK, "")
	env.Get(t, "/v1/authz", reader.Secret).Want(t, http.StatusTooManyRequests, "RATE_LIMITED")
	env.Get(t, "/v1/authz?refuse_as=403", reader.Secret).Want(t, http.StatusForbidden, "RATE_LIMITED")
	env.Do(t, apitest.Request{Method: "TRACE", Path: "/v1/authz", Cred: jwt}).Want(t, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
}
