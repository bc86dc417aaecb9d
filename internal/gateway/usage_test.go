package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// Every front door counts in a key's usage, once per request, as what its
// admission ended in: the WebSocket upgrade, a gateway route, forward
// auth and the verify API, beside REST.
func TestKeyUsageCountsEveryFrontDoor(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	const verifyToken = "verify-token-0123456789abcdefghijklmnop"
	env := apitest.New(t, map[string]string{
		"PRODUCT_SCOPES":           "app:read,app:write",
		"GATEWAY_ROUTES":           "/app/ " + up.URL + " scope=app:write read_scope=app:read",
		"VERIFY_TOKENS":            verifyToken,
		"LAST_USED_FLUSH_INTERVAL": "1h", // the counts wait in memory for the flush below
	})
	jwt := env.Token(t, uniqueEmail("usage"))
	var key api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "doors", "scopes": []string{"app:read", "ws:connect"}}).
		Want(t, http.StatusCreated, "").JSON(t, &key)
	header := map[string]string{"X-API-Key": key.Secret}
	var want api.UsageCounts
	// expect sends one request and counts it as the class its status says.
	expect := func(r apitest.Response, status int) {
		t.Helper()
		if r.Status != status {
			t.Fatalf("%d %s, want %d", r.Status, r.Body, status)
		}
		if status < 300 {
			want.OK++
		} else {
			want.Refused++
		}
	}

	// keyhub's own WebSocket.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(env.URL, "http")
	c, _, err := websocket.Dial(ctx, wsURL+"/v1/ws", &websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {key.Secret}}})
	if err != nil {
		t.Fatal(err)
	}
	c.Close(websocket.StatusNormalClosure, "")
	want.OK++

	// A gateway route: a read the key may make, a write it may not.
	expect(env.Do(t, apitest.Request{Method: http.MethodGet, Path: "/app/tasks", Headers: header}), http.StatusOK)
	expect(env.Do(t, apitest.Request{Method: http.MethodPost, Path: "/app/tasks", Headers: header, Body: map[string]any{}}), http.StatusForbidden)
	if n := len(up.requests()); n != 1 {
		t.Fatalf("the upstream received %d requests, want the allowed one", n)
	}

	// Forward auth.
	expect(env.Do(t, apitest.Request{Method: http.MethodGet, Path: "/v1/authz?scope=app:read", Headers: header}), http.StatusOK)
	expect(env.Do(t, apitest.Request{Method: http.MethodGet, Path: "/v1/authz?scope=app:write", Headers: header}), http.StatusForbidden)

	// The verify API: a verdict is always 200; the code says which class.
	for scope, valid := range map[string]bool{"app:read": true, "app:write": false} {
		var v api.KeyVerification
		env.Post(t, "/v1/keys/verify", verifyToken, map[string]any{"key": key.Secret, "scope": scope}).Want(t, http.StatusOK, "").JSON(t, &v)
		if v.Valid != valid {
			t.Fatalf("verify with %s: %+v", scope, v)
		}
		if valid {
			want.OK++
		} else {
			want.Refused++
		}
	}

	if err := env.App.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got api.KeyUsage
	env.Get(t, "/v1/keys/"+key.ID.String()+"/usage", jwt).Want(t, http.StatusOK, "").JSON(t, &got)
	if got.Totals != want {
		t.Fatalf("stored %+v, the front doors answered %+v", got.Totals, want)
	}
}
