package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/api"
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

// productSocket is a product's WebSocket server behind a route: it echoes
// every message (of any size: the limit under test is keyhub's) and
// records what each connection's handshake carried, the size of every
// message it received, and how each connection ended.
type productSocket struct {
	*httptest.Server
	mu       sync.Mutex
	queries  []string
	headers  []http.Header
	received []int
	closes   chan websocket.StatusCode
}

func newProductSocket(t *testing.T) *productSocket {
	t.Helper()
	u := &productSocket{closes: make(chan websocket.StatusCode, 8)}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c.SetReadLimit(-1)
		u.mu.Lock()
		u.queries = append(u.queries, r.URL.RawQuery)
		u.headers = append(u.headers, r.Header.Clone())
		u.mu.Unlock()
		ctx := context.Background()
		for {
			typ, data, err := c.Read(ctx)
			if err != nil {
				u.closes <- websocket.CloseStatus(err)
				return
			}
			u.mu.Lock()
			u.received = append(u.received, len(data))
			u.mu.Unlock()
			if err := c.Write(ctx, typ, data); err != nil {
				return
			}
		}
	}))
	t.Cleanup(u.Close)
	return u
}

// messageSizes are the sizes of the messages the upstream received.
func (u *productSocket) messageSizes() []int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]int(nil), u.received...)
}

// expectClose waits until the upstream side of a connection ends with want.
func (u *productSocket) expectClose(t *testing.T, want websocket.StatusCode, within time.Duration) {
	t.Helper()
	select {
	case got := <-u.closes:
		if got != want {
			t.Fatalf("the upstream side closed with %d, want %d", got, want)
		}
	case <-time.After(within):
		t.Fatalf("the upstream side was not closed within %v", within)
	}
}

// revocationBound is what the README promises for a revoke on one process
// to end the sockets on every other (CHANGE_FEED_STALE_BOUND's default).
const revocationBound = 5 * time.Second

// relayed is a client socket through a route; its reader reports the
// close code and when it saw it.
type relayed struct {
	conn     *websocket.Conn
	closed   chan websocket.StatusCode
	closedAt time.Time // set before closed is sent
}

// dialRoute opens a WebSocket to path on env with header, and echoes one
// message through it.
func dialRoute(t *testing.T, env *apitest.Env, path string, header http.Header) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(env.URL, "http")+path, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %d %v", path, status, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	c.SetReadLimit(-1)
	socketEcho(t, c, []byte("hello"))
	return c
}

// socketEcho sends msg and reads it back.
func socketEcho(t *testing.T, c *websocket.Conn, msg []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
		t.Fatalf("write %d bytes: %v", len(msg), err)
	}
	if _, got, err := c.Read(ctx); err != nil || len(got) != len(msg) {
		t.Fatalf("echo of %d bytes: %d bytes, %v", len(msg), len(got), err)
	}
}

// watch reads c in the background until it closes.
func watch(c *websocket.Conn) *relayed {
	s := &relayed{conn: c, closed: make(chan websocket.StatusCode, 1)}
	go func() {
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				s.closedAt = time.Now()
				s.closed <- websocket.CloseStatus(err)
				return
			}
		}
	}()
	return s
}

func (s *relayed) expectClose(t *testing.T, want websocket.StatusCode, within time.Duration) {
	t.Helper()
	select {
	case got := <-s.closed:
		if got != want {
			t.Fatalf("the client closed with %d, want %d", got, want)
		}
	case <-time.After(within):
		t.Fatalf("the client was not closed within %v", within)
	}
}

// TestProxiedSocketMessageSizeLimit: a client message up to its tier's
// size limit reaches the upstream; one byte more closes the client with
// 1009 and the upstream side with 1009 too, and never reaches it.
func TestProxiedSocketMessageSizeLimit(t *testing.T) {
	t.Parallel()
	up := newProductSocket(t)
	env := apitest.New(t, map[string]string{"GATEWAY_ROUTES": "/app/ " + up.URL})
	key, _ := newKey(t, env, nil)
	var me api.Me
	env.Get(t, "/v1/me", key).Want(t, http.StatusOK, "").JSON(t, &me)
	limit := me.Limits.MaxMessageBytes
	if limit <= 0 {
		t.Fatalf("the tier's message size limit is %d", limit)
	}

	c := dialRoute(t, env, "/app/socket", http.Header{"X-Api-Key": {key}})
	socketEcho(t, c, make([]byte, limit))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageBinary, make([]byte, limit+1)); err != nil {
		t.Fatal(err)
	}
	watch(c).expectClose(t, websocket.StatusMessageTooBig, waitLimit)
	up.expectClose(t, websocket.StatusMessageTooBig, waitLimit)
	if sizes := up.messageSizes(); len(sizes) != 2 || sizes[1] != int(limit) {
		t.Fatalf("the upstream received messages of %v bytes, want [5 %d]", sizes, limit)
	}
}

// TestProxiedSocketClosesWhenTheKeyExpires: a socket relayed with a key
// closes with 4001 on both sides when the key expires, not before.
func TestProxiedSocketClosesWhenTheKeyExpires(t *testing.T) {
	t.Parallel()
	up := newProductSocket(t)
	env := apitest.New(t, map[string]string{"GATEWAY_ROUTES": "/app/ " + up.URL})
	var key api.CreatedKey
	env.Post(t, "/v1/keys", env.Token(t, uniqueEmail("gw")), map[string]any{"name": "expiring"}).Want(t, http.StatusCreated, "").JSON(t, &key)
	// The API refuses lifetimes under a minute; the database does not.
	var expiresAt time.Time
	if err := env.Pool.QueryRow(context.Background(),
		"UPDATE api_keys SET expires_at = now() + interval '2 seconds' WHERE id = $1 RETURNING expires_at", key.ID).Scan(&expiresAt); err != nil {
		t.Fatal(err)
	}
	c := watch(dialRoute(t, env, "/app/socket", http.Header{"X-Api-Key": {key.Secret}}))
	c.expectClose(t, 4001, waitLimit)
	if c.closedAt.Before(expiresAt) {
		t.Fatalf("closed %v before the key expired", expiresAt.Sub(c.closedAt))
	}
	up.expectClose(t, 4001, waitLimit)
}

// TestProxiedSocketClosesWhenTheGraceEnds: refreshing a key with a grace
// period leaves its relayed socket open through the grace and closes it
// with 4001 on both sides when the grace ends.
func TestProxiedSocketClosesWhenTheGraceEnds(t *testing.T) {
	t.Parallel()
	up := newProductSocket(t)
	env := apitest.New(t, map[string]string{"GATEWAY_ROUTES": "/app/ " + up.URL})
	key, jwt := newKey(t, env, nil)
	var me api.Me
	env.Get(t, "/v1/me", key).Want(t, http.StatusOK, "").JSON(t, &me)
	c := watch(dialRoute(t, env, "/app/socket", http.Header{"X-Api-Key": {key}}))

	const grace = 2 * time.Second
	refreshed := time.Now()
	env.Post(t, "/v1/keys/"+me.KeyID.String()+"/refresh", jwt, map[string]any{"grace_period": int(grace / time.Second)}).Want(t, http.StatusCreated, "")
	c.expectClose(t, 4001, grace+waitLimit)
	if took := c.closedAt.Sub(refreshed); took < grace {
		t.Fatalf("closed %v after a refresh with %v of grace", took, grace)
	}
	up.expectClose(t, 4001, waitLimit)
}

// TestProxiedSocketRevokedOnAnotherProcess: two keyhub processes on one
// database; a key revoked on one closes the socket relayed through the
// other with 4001 on both sides within the revocation bound.
func TestProxiedSocketRevokedOnAnotherProcess(t *testing.T) {
	t.Parallel()
	up := newProductSocket(t)
	a := apitest.New(t, map[string]string{"GATEWAY_ROUTES": "/app/ " + up.URL})
	b := a.Replica(t, nil)
	key, jwt := newKey(t, a, nil)
	var me api.Me
	b.Get(t, "/v1/me", key).Want(t, http.StatusOK, "").JSON(t, &me)
	c := watch(dialRoute(t, b, "/app/socket", http.Header{"X-Api-Key": {key}}))
	b.WaitListening(t)

	revoked := time.Now()
	a.Delete(t, "/v1/keys/"+me.KeyID.String(), jwt).Want(t, http.StatusOK, "")
	c.expectClose(t, 4001, revocationBound)
	up.expectClose(t, 4001, revocationBound-time.Since(revoked))
	t.Logf("closed on the other process %v after the revoke", c.closedAt.Sub(revoked))
}

// TestProxiedSocketTicketNeverReachesTheUpstream: a socket admitted with a
// ticket is dialled upstream without it, in whatever spelling the client
// sent it, and with the rest of its query.
func TestProxiedSocketTicketNeverReachesTheUpstream(t *testing.T) {
	t.Parallel()
	up := newProductSocket(t)
	env := apitest.New(t, map[string]string{"GATEWAY_ROUTES": "/app/ " + up.URL, "WS_TICKET_SECRET": "gateway-test-ticket-secret-0123456789"})
	key, _ := newKey(t, env, nil)
	// Room for more than one socket: each is dialled as the last one's
	// slot may still be held.
	var me api.Me
	env.Get(t, "/v1/me", key).Want(t, http.StatusOK, "").JSON(t, &me)
	if _, err := env.Pool.Exec(context.Background(), "UPDATE owners SET tier = 'pro' WHERE id = $1", me.OwnerID); err != nil {
		t.Fatal(err)
	}
	for _, query := range []string{"?ticket=%s&x=1", "?x=1&t%%69cket=%s", "?%%74icket=%s&x=1"} {
		var ticket api.WSTicket
		env.Post(t, "/v1/ws/tickets", key, nil).Want(t, http.StatusCreated, "").JSON(t, &ticket)
		c := dialRoute(t, env, "/app/socket"+fmt.Sprintf(query, ticket.Ticket), nil)
		up.mu.Lock()
		got, header := up.queries[len(up.queries)-1], up.headers[len(up.headers)-1]
		up.mu.Unlock()
		if got != "x=1" {
			t.Errorf("%s: the upstream was dialled with the query %q, want x=1", query, got)
		}
		for name, values := range header {
			for _, v := range values {
				if strings.Contains(v, ticket.Ticket) {
					t.Errorf("%s: the upstream received the ticket in %s", query, name)
				}
			}
		}
		c.Close(websocket.StatusNormalClosure, "")
		up.expectClose(t, websocket.StatusNormalClosure, waitLimit)
	}
}
