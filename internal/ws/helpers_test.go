package ws_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// testTicketSecret lets tests forge tickets the server accepts.
const testTicketSecret = "test-ticket-secret-0123456789abcdef"

// newEnv starts keyhub with a ticket secret the tests know.
func newEnv(t *testing.T, vars map[string]string) *apitest.Env {
	t.Helper()
	all := map[string]string{"WS_TICKET_SECRET": testTicketSecret}
	for k, v := range vars {
		all[k] = v
	}
	return apitest.New(t, all)
}

func wsURL(env *apitest.Env, path string) string {
	return "ws" + strings.TrimPrefix(env.URL, "http") + path
}

// dial opens a connection; a refused upgrade returns its status and body.
func dial(t *testing.T, env *apitest.Env, path string, header http.Header) (*websocket.Conn, int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL(env, path), &websocket.DialOptions{HTTPHeader: header, HTTPClient: env.Server.Client()})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		return nil, resp.StatusCode, body
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, resp.StatusCode, nil
}

// mustDial opens a connection that must succeed.
func mustDial(t *testing.T, env *apitest.Env, path string, header http.Header) *websocket.Conn {
	t.Helper()
	c, status, body := dial(t, env, path, header)
	if c == nil {
		t.Fatalf("dial %s: %d %s", path, status, body)
	}
	return c
}

func bearer(cred string) http.Header {
	return http.Header{"Authorization": {"Bearer " + cred}}
}

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("not a JSON error: %q", body)
	}
	return e.Error.Code
}

// message is any server message, decoded loosely.
type message map[string]any

func (m message) str(field string) string { s, _ := m[field].(string); return s }

func read(t *testing.T, c *websocket.Conn) message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var m message
	if err := wsjson.Read(ctx, c, &m); err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

func send(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := wsjson.Write(ctx, c, v); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// readWelcome reads the first message and checks it is the welcome.
func readWelcome(t *testing.T, c *websocket.Conn) message {
	t.Helper()
	m := read(t, c)
	if m.str("type") != "welcome" || m.str("connection_id") == "" {
		t.Fatalf("want welcome, got %v", m)
	}
	return m
}

// expectClose reads until the connection closes, checks the close code
// and returns the reason.
func expectClose(t *testing.T, c *websocket.Conn, want websocket.StatusCode, within time.Duration) (reason string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			t.Fatalf("not closed within %v", within)
		}
		if got := websocket.CloseStatus(err); got != want {
			t.Fatalf("want close %d, got %d (%v)", want, got, err)
		}
		var ce websocket.CloseError
		errors.As(err, &ce)
		return ce.Reason
	}
}

// createKey creates a key for the user of token.
func createKey(t *testing.T, env *apitest.Env, token string, body map[string]any) api.CreatedKey {
	t.Helper()
	if body == nil {
		body = map[string]any{"name": "daemon"}
	}
	var k api.CreatedKey
	env.Post(t, "/v1/keys", token, body).Want(t, http.StatusCreated, "").JSON(t, &k)
	return k
}

// listConnections returns the caller owner's open connections.
func listConnections(t *testing.T, env *apitest.Env, cred string) []api.WSConnection {
	t.Helper()
	var list api.WSConnectionList
	env.Get(t, "/v1/ws/connections", cred).Want(t, http.StatusOK, "").JSON(t, &list)
	return list.Data
}

// waitLimit bounds the waits that promise nothing: only how long a
// failure takes to show, so generous for a loaded machine.
const waitLimit = 15 * time.Second

// waitConnections waits until the owner has n open connections: a closed
// socket is released by the server a moment after the client sees it.
func waitConnections(t *testing.T, env *apitest.Env, cred string, n int) []api.WSConnection {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		list := listConnections(t, env, cred)
		if len(list) == n {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d connections, have %d", n, len(list))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// setup starts keyhub with a signed-in user (alice) holding one key.
func setup(t *testing.T, vars map[string]string) (env *apitest.Env, jwt string, key api.CreatedKey) {
	t.Helper()
	env = newEnv(t, vars)
	jwt = env.Token(t, "alice@example.com")
	return env, jwt, createKey(t, env, jwt, nil)
}

// connectKey opens a connection with key in the headers and reads the
// welcome.
func connectKey(t *testing.T, env *apitest.Env, key api.CreatedKey) *websocket.Conn {
	t.Helper()
	c := mustDial(t, env, "/v1/ws", bearer(key.Secret))
	readWelcome(t, c)
	return c
}
