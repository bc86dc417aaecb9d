package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/api/identity"
	"github.com/keyhub/keyhub/internal/apitest"
)

// A WebSocket under a gateway route is relayed frame by frame with the
// caller's signed identity and none of its credentials; revoking the key
// closes the client with 4001 and the upstream side too.
func TestProxyRelaysWebSockets(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen http.Header
	var seenQuery string
	closed := make(chan websocket.StatusCode, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		mu.Lock()
		seen, seenQuery = r.Header.Clone(), r.URL.RawQuery
		mu.Unlock()
		ctx := context.Background()
		for {
			typ, data, err := c.Read(ctx)
			if err != nil {
				closed <- websocket.CloseStatus(err)
				return
			}
			_ = c.Write(ctx, typ, data)
		}
	}))
	t.Cleanup(up.Close)
	env := apitest.New(t, map[string]string{"GATEWAY_ROUTES": "/app/ " + up.URL + " strip_prefix"})
	key, jwt := newKey(t, env, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(env.URL, "http") + "/app/socket?x=1"
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {key}, "Keyhub-User-Id": {"forged"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := c.Read(ctx); err != nil || string(got) != "ping" {
		t.Fatalf("echo: %q %v", got, err)
	}
	mu.Lock()
	h, q := seen.Clone(), seenQuery
	mu.Unlock()
	for name := range h {
		lower := strings.ToLower(name)
		if lower == "authorization" || lower == "x-api-key" || lower == "x-makima-api-key" {
			t.Errorf("the upstream received the credential header %s", name)
		}
	}
	if h.Get("Keyhub-User-Id") == "forged" || h.Get("Keyhub-Identity") == "" || q != "x=1" {
		t.Fatalf("upstream headers %v, query %q", h, q)
	}
	// The identity verifies against keyhub's JWKS, as an upstream would.
	verifier, err := identity.New(ctx, identity.Config{JWKSURL: env.URL + "/.well-known/jwks.json", Audience: "keyhub-gateway"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifier.Verify(ctx, h.Get("Keyhub-Identity")); err != nil {
		t.Fatalf("identity: %v", err)
	}

	var me struct {
		KeyID string `json:"key_id"`
	}
	env.Get(t, "/v1/me", key).Want(t, http.StatusOK, "").JSON(t, &me)
	env.Delete(t, "/v1/keys/"+me.KeyID, jwt).Want(t, http.StatusOK, "")
	_, _, err = c.Read(ctx)
	if got := websocket.CloseStatus(err); got != 4001 {
		t.Fatalf("client close %d (%v), want 4001", got, err)
	}
	select {
	case got := <-closed:
		if got != 4001 {
			t.Fatalf("upstream close %d, want 4001", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream side was not closed")
	}
}
