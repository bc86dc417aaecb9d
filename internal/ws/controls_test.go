package ws_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// The controls on a key (disable, allowed_cidrs) are judged by the one
// admission step, auth.Gate; these tests hold every way into /v1/ws to
// it: the key in the headers, a ticket, and each shape of first message.

// socketDoor is one way to open /v1/ws with a key.
type socketDoor struct {
	name string
	// afterUpgrade: the credential comes in the first message, so a
	// refusal is a close (1008), not an HTTP status.
	afterUpgrade bool
	// first builds the first message for the key (nil: the credential is
	// in the handshake, a header or the ticket).
	first func(secret string) any
	// ticket: the door takes a ?ticket= instead of the key.
	ticket bool
}

var socketDoors = []socketDoor{
	{name: "header"},
	{name: "ticket", ticket: true},
	{name: "first message auth", afterUpgrade: true, first: func(secret string) any {
		return map[string]any{"type": "auth", "api_key": secret}
	}},
	{name: "first message authenticate", afterUpgrade: true, first: func(secret string) any {
		return map[string]any{"type": "authenticate", "apiKey": secret, "machineId": "m-1", "hostname": "box"}
	}},
	{name: "first message seed tiered", afterUpgrade: true, first: func(secret string) any {
		return map[string]any{"api_key": secret, "client_info": map[string]any{"machine_id": "m-1"}}
	}},
}

// refusal is how door reports a refusal with code: before the upgrade the
// REST status, after it the close code 1008.
func (d socketDoor) refusal(status int, code string) string {
	if d.afterUpgrade {
		return fmt.Sprintf("%d %s", websocket.StatusPolicyViolation, code)
	}
	return fmt.Sprintf("%d %s", status, code)
}

// open opens the door with secret (or ticket, for the ticket door) from
// the client address from ("" for the peer's own) and answers "welcome"
// (the connection is then closed) or the refusal: "401 KEY_DISABLED"
// before the upgrade, "1008 KEY_DISABLED" after a first message.
func (d socketDoor) open(t *testing.T, env *apitest.Env, secret, ticket, from string) string {
	t.Helper()
	header := http.Header{}
	if from != "" {
		header.Set("X-Forwarded-For", from)
	}
	path := "/v1/ws"
	switch {
	case d.ticket:
		path += "?ticket=" + url.QueryEscape(ticket)
	case d.first == nil:
		header.Set("Authorization", "Bearer "+secret)
	}
	c, status, body := dial(t, env, path, header)
	if c == nil {
		return fmt.Sprintf("%d %s", status, errorCode(t, body))
	}
	if d.first != nil {
		send(t, c, d.first(secret))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for { // the seed tiered shape's result comes before the welcome
		var m message
		err := wsjson.Read(ctx, c, &m)
		var ce websocket.CloseError
		switch {
		case errors.As(err, &ce):
			return fmt.Sprintf("%d %s", ce.Code, ce.Reason)
		case err != nil:
			t.Fatalf("%s: %v", d.name, err)
		case m.str("type") == "welcome":
			c.Close(websocket.StatusNormalClosure, "")
			return "welcome"
		}
	}
}

// mintTicket asks POST /v1/ws/tickets for a ticket of secret, from the
// client address from ("" for the peer's own).
func mintTicket(t *testing.T, env *apitest.Env, secret, from string) string {
	t.Helper()
	req := apitest.Request{Method: http.MethodPost, Path: "/v1/ws/tickets", Cred: secret}
	if from != "" {
		req.Headers = map[string]string{"X-Forwarded-For": from}
	}
	var issued api.WSTicket
	env.Do(t, req).Want(t, http.StatusCreated, "").JSON(t, &issued)
	return issued.Ticket
}

// setTier gives the owner of jwt's user tier (the free tier holds one key).
func setTier(t *testing.T, env *apitest.Env, jwt, tier string) {
	t.Helper()
	var me api.Me
	env.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "").JSON(t, &me)
	if _, err := env.Pool.Exec(context.Background(), "UPDATE owners SET tier = $1 WHERE id = $2", tier, me.OwnerID); err != nil {
		t.Fatal(err)
	}
}

// A disabled key, and a key it created, is refused on every way into
// /v1/ws with KEY_DISABLED: the key in the headers (401, no upgrade), a
// ticket minted before the disable (401), and each shape of first message
// (closed 1008 KEY_DISABLED). Once the key is enabled, each way works
// again for both.
func TestDisabledKeyOnEverySocketDoor(t *testing.T) {
	t.Parallel()
	// Each refusal is a failed authentication of 127.0.0.1: more than the
	// default burst of them.
	env := newEnv(t, map[string]string{"AUTH_FAILURE_BURST": "100"})
	jwt := env.Token(t, "alice@example.com")
	setTier(t, env, jwt, "team")
	parent := createKey(t, env, jwt, map[string]any{"name": "parent"})
	child := createKey(t, env, parent.Secret, map[string]any{"name": "child"})
	keys := []api.CreatedKey{parent, child}
	minted := map[string]string{} // before the disable
	for _, k := range keys {
		minted[k.Name] = mintTicket(t, env, k.Secret, "")
	}

	env.Post(t, "/v1/keys/"+parent.ID.String()+"/disable", jwt, nil).Want(t, http.StatusOK, "")
	for _, k := range keys {
		for _, d := range socketDoors {
			if got, want := d.open(t, env, k.Secret, minted[k.Name], ""), d.refusal(http.StatusUnauthorized, "KEY_DISABLED"); got != want {
				t.Errorf("%s key, %s: %s, want %s", k.Name, d.name, got, want)
			}
		}
	}

	env.Post(t, "/v1/keys/"+parent.ID.String()+"/enable", jwt, nil).Want(t, http.StatusOK, "")
	for _, k := range keys {
		for _, d := range socketDoors {
			if got := d.open(t, env, k.Secret, mintTicket(t, env, k.Secret, ""), ""); got != "welcome" {
				t.Errorf("%s key after enable, %s: %s", k.Name, d.name, got)
			}
		}
	}
}

// A key restricted to networks (allowed_cidrs) is 403 IP_NOT_ALLOWED on
// every way into /v1/ws from outside them (closed 1008 IP_NOT_ALLOWED
// after a first message), judged on the client address the trusted proxy
// reports; from inside, every way works. A ticket minted inside does not
// carry its address: it is judged where it is redeemed.
func TestAllowedCIDRsOnEverySocketDoor(t *testing.T) {
	t.Parallel()
	env := newEnv(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"})
	jwt := env.Token(t, "alice@example.com")
	setTier(t, env, jwt, "team")
	const inside, outside = "203.0.113.9", "198.51.100.7"
	pinned := createKey(t, env, jwt, map[string]any{"name": "pinned", "allowed_cidrs": []string{"203.0.113.0/24"}})
	for _, d := range socketDoors {
		if got, want := d.open(t, env, pinned.Secret, mintTicket(t, env, pinned.Secret, inside), outside), d.refusal(http.StatusForbidden, "IP_NOT_ALLOWED"); got != want {
			t.Errorf("from outside, %s: %s, want %s", d.name, got, want)
		}
		if got := d.open(t, env, pinned.Secret, mintTicket(t, env, pinned.Secret, inside), inside); got != "welcome" {
			t.Errorf("from inside, %s: %s", d.name, got)
		}
		// The proxy's own address (no X-Forwarded-For) is outside too.
		if got, want := d.open(t, env, pinned.Secret, mintTicket(t, env, pinned.Secret, inside), ""), d.refusal(http.StatusForbidden, "IP_NOT_ALLOWED"); got != want {
			t.Errorf("from the proxy itself, %s: %s, want %s", d.name, got, want)
		}
	}
}
