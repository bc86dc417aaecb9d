package ws_test

import (
	"encoding/hex"
	"github.com/keyhub/keyhub/api"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/ws"
)

func TestHeaderAuthWelcomes(t *testing.T) {
	t.Parallel()
	env, jwt, key := setup(t, nil)

	for _, path := range []string{"/v1/ws", "/ws/daemon"} {
		c := mustDial(t, env, path, http.Header{"X-API-Key": {key.Secret}})
		m := readWelcome(t, c)
		limits, _ := m["limits"].(map[string]any)
		if m.str("tier") != "free" || limits["max_connections"] != float64(1) || limits["messages_per_minute"] != float64(60) || m.str("expires_at") == "" {
			t.Fatalf("welcome: %v", m)
		}
		c.Close(websocket.StatusNormalClosure, "")
		waitConnections(t, env, jwt, 0)
	}

	// A dashboard user connects with its access token too.
	c := mustDial(t, env, "/v1/ws", bearer(jwt))
	readWelcome(t, c)
	send(t, c, map[string]any{"type": "whoami"})
	if m := read(t, c); m.str("type") != "whoami" || m.str("auth_method") != "jwt" || m.str("email") != "alice@example.com" {
		t.Fatalf("whoami: %v", m)
	}
}

func TestBadHeaderIs401WithoutUpgrade(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	c, status, body := dial(t, env, "/v1/ws", http.Header{"X-API-Key": {"mk_notarealkeyatallnotarealkeyatallnotarealk"}})
	if c != nil || status != http.StatusUnauthorized || errorCode(t, body) == "" {
		t.Fatalf("want 401 JSON, got %d %s", status, body)
	}
}

func TestKeyWithoutScopeIs403(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	jwt := env.Token(t, "alice@example.com")
	key := createKey(t, env, jwt, map[string]any{"name": "reader", "scopes": []string{"keys:read"}})
	_, status, body := dial(t, env, "/v1/ws", bearer(key.Secret))
	if status != http.StatusForbidden || errorCode(t, body) != "INSUFFICIENT_SCOPE" {
		t.Fatalf("want 403 INSUFFICIENT_SCOPE, got %d %s", status, body)
	}
}

func TestTicketWorksOnce(t *testing.T) {
	t.Parallel()
	env, jwt, key := setup(t, nil)

	for _, cred := range []string{key.Secret, jwt} {
		var issued api.WSTicket
		env.Post(t, "/v1/ws/tickets", cred, nil).Want(t, http.StatusCreated, "").JSON(t, &issued)
		if issued.ExpiresIn != 30 || len(issued.Ticket) < 10 || issued.Ticket[:4] != "wst_" {
			t.Fatalf("ticket: %+v", issued)
		}
		path := "/v1/ws?ticket=" + url.QueryEscape(issued.Ticket)
		c := mustDial(t, env, path, nil)
		readWelcome(t, c)
		send(t, c, map[string]any{"type": "whoami"})
		if m := read(t, c); (cred == jwt) != (m.str("auth_method") == "jwt") {
			t.Fatalf("whoami over ticket: %v", m)
		}
		c.Close(websocket.StatusNormalClosure, "")
		waitConnections(t, env, jwt, 0)

		_, status, body := dial(t, env, path, nil)
		if status != http.StatusUnauthorized || errorCode(t, body) != "INVALID_TICKET" {
			t.Fatalf("reused ticket: want 401 INVALID_TICKET, got %d %s", status, body)
		}
	}
}

func TestBadTicketsAre401(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, nil)
	// The change feed purges the cache when it starts listening: under
	// load that came after the dial below, and the count read 0.
	env.WaitListening(t)
	var issued api.WSTicket
	env.Post(t, "/v1/ws/tickets", key.Secret, nil).Want(t, http.StatusCreated, "").JSON(t, &issued)

	signer := ws.NewTicketSigner([]byte(testTicketSecret))
	otherSigner := ws.NewTicketSigner([]byte("another-secret-of-at-least-32-characters"))
	expired := ws.Ticket{ID: uuid.New(), UserID: key.UserID, OwnerID: uuid.Nil, KeyID: key.ID, ExpiresAt: time.Now().Add(-time.Second)}
	forged := expired
	forged.ExpiresAt = time.Now().Add(time.Minute)

	tamper := []byte(issued.Ticket)
	tamper[10] ^= 1
	cases := map[string]string{
		"expired":      signer.Sign(expired),
		"other secret": otherSigner.Sign(forged),
		"tampered":     string(tamper),
		"not a ticket": "wst_hello",
		"no prefix":    issued.Ticket[4:],
	}
	for name, ticket := range cases {
		_, status, body := dial(t, env, "/v1/ws?ticket="+url.QueryEscape(ticket), nil)
		if status != http.StatusUnauthorized || errorCode(t, body) != "INVALID_TICKET" {
			t.Errorf("%s: want 401 INVALID_TICKET, got %d %s", name, status, body)
		}
	}
	// The good ticket still works: refusals did not use it up.
	readWelcome(t, mustDial(t, env, "/v1/ws?ticket="+url.QueryEscape(issued.Ticket), nil))
}

func TestTicketOfRevokedKeyIsRefused(t *testing.T) {
	t.Parallel()
	env, jwt, key := setup(t, nil)
	var issued api.WSTicket
	env.Post(t, "/v1/ws/tickets", key.Secret, nil).Want(t, http.StatusCreated, "").JSON(t, &issued)
	env.Delete(t, "/v1/keys/"+key.ID.String(), jwt).Want(t, http.StatusOK, "")
	_, status, body := dial(t, env, "/v1/ws?ticket="+url.QueryEscape(issued.Ticket), nil)
	if status != http.StatusUnauthorized || errorCode(t, body) != "KEY_REVOKED" {
		t.Fatalf("want 401 KEY_REVOKED, got %d %s", status, body)
	}
}

func TestFirstMessageAuth(t *testing.T) {
	t.Parallel()
	// Long enough that a loaded machine sends each first message in time
	// (300 ms was not always): the silent peer below waits it out.
	const authTimeout = 2 * time.Second
	env, jwt, key := setup(t, map[string]string{"WS_AUTH_TIMEOUT": authTimeout.String()})

	shapes := map[string]map[string]any{
		"api_key": {"type": "auth", "api_key": key.Secret},
		"daemon":  {"type": "authenticate", "apiKey": key.Secret, "machineId": "m-1", "hostname": "box", "maxConcurrentTasks": 10},
		"token":   {"type": "auth", "token": jwt},
	}
	for name, msg := range shapes {
		c := mustDial(t, env, "/ws/daemon", nil)
		send(t, c, msg)
		if m := read(t, c); m.str("type") != "welcome" {
			t.Fatalf("%s: want welcome, got %v", name, m)
		}
		c.Close(websocket.StatusNormalClosure, "")
		waitConnections(t, env, jwt, 0)
	}

	refused := map[string]any{
		"bad key":       map[string]any{"type": "auth", "api_key": "mk_notarealkeyatallnotarealkeyatallnotarealk"},
		"wrong type":    map[string]any{"type": "ping"},
		"both":          map[string]any{"type": "auth", "api_key": key.Secret, "token": jwt},
		"not an object": []int{1, 2},
	}
	for name, msg := range refused {
		c := mustDial(t, env, "/v1/ws", nil)
		send(t, c, msg)
		t.Run(name, func(t *testing.T) {
			if reason := expectClose(t, c, websocket.StatusPolicyViolation, authTimeout+10*time.Second); reason == "authentication timeout" {
				t.Fatal("not refused: closed by the authentication timeout")
			}
		})
	}

	// Silence: closed with 1008 after WS_AUTH_TIMEOUT. Timed from before
	// the dial, so the server's clock (started at the upgrade) cannot have
	// run longer than the test's.
	start := time.Now()
	c := mustDial(t, env, "/v1/ws", nil)
	expectClose(t, c, websocket.StatusPolicyViolation, authTimeout+10*time.Second)
	if took := time.Since(start); took < authTimeout {
		t.Fatalf("closed after %v, before the %v timeout", took, authTimeout)
	}
}

func TestOriginNotAllowed(t *testing.T) {
	t.Parallel()
	env := newEnv(t, map[string]string{"ALLOWED_ORIGINS": "https://app.example.com"})
	jwt := env.Token(t, "alice@example.com")
	_, status, body := dial(t, env, "/v1/ws", http.Header{"Authorization": {"Bearer " + jwt}, "Origin": {"https://evil.example.net"}})
	if status != http.StatusForbidden || errorCode(t, body) != "ORIGIN_NOT_ALLOWED" {
		t.Fatalf("want 403 ORIGIN_NOT_ALLOWED, got %d %s", status, body)
	}
	readWelcome(t, mustDial(t, env, "/v1/ws", http.Header{"Authorization": {"Bearer " + jwt}, "Origin": {"https://app.example.com"}}))
}

// TestTicketsGoThroughTheKeyCache: a ticket's key is resolved by the same
// cache as a key in the headers (it used to read the database directly,
// with its own copy of the rules), so the change feed and the stale bound
// govern tickets too.
func TestTicketsGoThroughTheKeyCache(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, nil)
	// The change feed purges the cache when it starts listening: under
	// load that came after the dial below, and the count read 0.
	env.WaitListening(t)
	var issued api.WSTicket
	env.Post(t, "/v1/ws/tickets", key.Secret, nil).Want(t, http.StatusCreated, "").JSON(t, &issued)
	keyHash := apikey.Hash(key.Secret)
	env.App.Keys.Invalidate(hex.EncodeToString(keyHash[:]))
	if known, _ := env.App.Keys.Len(); known != 0 {
		t.Fatalf("%d keys cached after the invalidation", known)
	}
	readWelcome(t, mustDial(t, env, "/v1/ws?ticket="+url.QueryEscape(issued.Ticket), nil))
	if known, _ := env.App.Keys.Len(); known != 1 {
		t.Fatalf("the ticket's key is not in the key cache (%d cached)", known)
	}
}
