package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// upgradeHeaders make a GET a WebSocket handshake.
var upgradeHeaders = map[string]string{
	"Connection": "Upgrade", "Upgrade": "websocket",
	"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}

// ANONYMOUS_USERS=read-only (the default): an anonymous sign-in reads its
// own account but creates, refreshes and connects nothing, each refused as
// ANONYMOUS_USER; once the user links an identity (a token without
// is_anonymous), the same user may.
func TestAnonymousSignInReadsOnly(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"PRODUCT_SCOPES": "app:read", "GATEWAY_ROUTES": "/app/ http://127.0.0.1:9 scope=app:read"})
	visitor := uuid.New()
	anon := env.AnonymousToken(t, visitor)

	var me api.Me
	env.Get(t, "/v1/me", anon).Want(t, http.StatusOK, "").JSON(t, &me)
	if me.UserID != visitor || !slices.Equal(me.Scopes, []string{"keys:read", "events:read"}) {
		t.Fatalf("an anonymous session is %s holding %v, want %s holding keys:read and events:read", me.UserID, me.Scopes, visitor)
	}
	env.Get(t, "/v1/keys", anon).Want(t, http.StatusOK, "")
	env.Get(t, "/v1/events", anon).Want(t, http.StatusOK, "")

	refused := []apitest.Request{
		{Method: http.MethodPost, Path: "/v1/keys", Body: map[string]any{"name": "k"}},
		{Method: http.MethodPost, Path: "/api/v1/auth/api-keys/", Body: map[string]any{"name": "k"}},
		{Method: http.MethodPost, Path: "/v1/ws/tickets"},
		{Method: http.MethodGet, Path: "/v1/ws", Headers: upgradeHeaders},
	}
	for _, req := range refused {
		req.Cred = anon
		env.Do(t, req).Want(t, http.StatusForbidden, "ANONYMOUS_USER")
	}
	// A product route (not in keyhub's openapi.yaml, so not through env.Do).
	req, err := http.NewRequest(http.MethodGet, env.URL+"/app/anything", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+anon)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `"ANONYMOUS_USER"`) {
		t.Fatalf("an anonymous session through the gateway: %d %s", resp.StatusCode, body)
	}

	// Linking an email to the account: Supabase's next token for the same
	// user has is_anonymous false.
	var key api.CreatedKey
	env.Post(t, "/v1/keys", env.LinkedToken(t, visitor, "linked@example.com"), map[string]any{"name": "after linking"}).
		Want(t, http.StatusCreated, "").JSON(t, &key)
	// The anonymous token still in the browser stays read-only.
	env.Post(t, "/v1/keys/"+key.ID.String()+"/refresh", anon, map[string]any{}).Want(t, http.StatusForbidden, "ANONYMOUS_USER")
}

// ANONYMOUS_USERS=refuse: every request of an anonymous sign-in is
// ANONYMOUS_USER, and no user or tenant is created for it.
func TestAnonymousSignInRefused(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"ANONYMOUS_USERS": "refuse"})
	visitor := uuid.New()
	env.Get(t, "/v1/me", env.AnonymousToken(t, visitor)).Want(t, http.StatusForbidden, "ANONYMOUS_USER")
	var users int
	if err := env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM users WHERE id = $1`, visitor).Scan(&users); err != nil {
		t.Fatal(err)
	}
	if users != 0 {
		t.Fatalf("a refused anonymous sign-in was provisioned (%d users)", users)
	}
}

// ANONYMOUS_USERS=allow: an anonymous sign-in is like any user.
func TestAnonymousSignInAllowed(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"ANONYMOUS_USERS": "allow"})
	env.Post(t, "/v1/keys", env.AnonymousToken(t, uuid.New()), map[string]any{"name": "k"}).Want(t, http.StatusCreated, "")
}
