package ws_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/ws"
)

// echoUpstream is a product's WebSocket server: it echoes every message
// and records how each connection ended.
type echoUpstream struct {
	srv     *httptest.Server
	mu      sync.Mutex
	closes  []websocket.StatusCode
	headers []http.Header
	// closeWith, when set, makes the upstream close each connection after
	// its first message with this code.
	closeWith websocket.StatusCode
}

func newEchoUpstream(t *testing.T) *echoUpstream {
	t.Helper()
	u := &echoUpstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"product.v1"}})
		if err != nil {
			return
		}
		u.mu.Lock()
		u.headers = append(u.headers, r.Header.Clone())
		u.mu.Unlock()
		ctx := context.Background()
		for {
			typ, data, err := c.Read(ctx)
			if err != nil {
				u.mu.Lock()
				u.closes = append(u.closes, websocket.CloseStatus(err))
				u.mu.Unlock()
				return
			}
			if u.closeWith != 0 {
				c.Close(u.closeWith, "upstream says bye")
				return
			}
			if err := c.Write(ctx, typ, data); err != nil {
				return
			}
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// waitClose waits until the upstream saw n connections end and returns
// the last code.
func (u *echoUpstream) waitClose(t *testing.T, n int) websocket.StatusCode {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		u.mu.Lock()
		got := len(u.closes)
		var last websocket.StatusCode
		if got > 0 {
			last = u.closes[got-1]
		}
		u.mu.Unlock()
		if got >= n {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upstream saw %d closed connections, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// relayEnv serves the app's hub relaying to up, as the gateway mounts it.
func relayEnv(t *testing.T, env *apitest.Env, upstreamURL string, need auth.Need) string {
	t.Helper()
	dial := func(ctx context.Context, r *http.Request, p *keyhub.Principal, subprotocols []string) (*websocket.Conn, error) {
		c, _, err := websocket.Dial(ctx, upstreamURL, &websocket.DialOptions{
			Subprotocols: subprotocols,
			HTTPHeader:   http.Header{"Keyhub-User-Id": {p.UserID.String()}},
		})
		return c, err
	}
	failed := func(w http.ResponseWriter, r *http.Request, err error) {
		w.WriteHeader(http.StatusBadGateway) // the gateway's answer, with its own code
	}
	srv := httptest.NewServer(env.App.WebSocket.Relay(need, dial, failed))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dialRelay(t *testing.T, url string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: header, Subprotocols: []string{"product.v1"}})
	if c != nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

func echo(t *testing.T, c *websocket.Conn, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(text)); err != nil {
		t.Fatal(err)
	}
	_, got, err := c.Read(ctx)
	if err != nil || string(got) != text {
		t.Fatalf("echo of %q: %q %v", text, got, err)
	}
}

// A relayed socket passes frames both ways with the upstream's
// subprotocol; revoking its key closes it with 4001 and the upstream side
// with the same code.
func TestRelayClosesBothSidesOnRevoke(t *testing.T) {
	t.Parallel()
	env, jwt, key := setup(t, nil)
	up := newEchoUpstream(t)
	url := relayEnv(t, env, up.srv.URL, auth.Need{})
	c, _, err := dialRelay(t, url, bearer(key.Secret))
	if err != nil {
		t.Fatal(err)
	}
	if c.Subprotocol() != "product.v1" {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	echo(t, c, "hello")
	echo(t, c, strings.Repeat("x", 10_000))
	// The relayed socket holds the free tier's one connection slot.
	waitConnections(t, env, jwt, 1)

	env.Delete(t, "/v1/keys/"+key.ID.String(), jwt).Want(t, http.StatusOK, "")
	expectClose(t, c, ws.StatusKeyRevoked, 2*time.Second)
	if got := up.waitClose(t, 1); got != ws.StatusKeyRevoked {
		t.Fatalf("the upstream saw close %d, want %d", got, ws.StatusKeyRevoked)
	}
}

// An owner closing a relayed socket from the Connections API gives 4002
// on both sides.
func TestRelayClosedByOwner(t *testing.T) {
	t.Parallel()
	env, jwt, key := setup(t, nil)
	up := newEchoUpstream(t)
	c, _, err := dialRelay(t, relayEnv(t, env, up.srv.URL, auth.Need{}), bearer(key.Secret))
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c, "hi")
	conns := waitConnections(t, env, jwt, 1)
	env.Delete(t, "/v1/ws/connections/"+conns[0].ID.String(), jwt).Want(t, http.StatusNoContent, "")
	expectClose(t, c, ws.StatusClosedByOwner, 2*time.Second)
	if got := up.waitClose(t, 1); got != ws.StatusClosedByOwner {
		t.Fatalf("the upstream saw close %d, want %d", got, ws.StatusClosedByOwner)
	}
}

// The upstream's close reaches the client with its code.
func TestRelayPassesUpstreamClose(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, nil)
	up := newEchoUpstream(t)
	up.closeWith = 4100
	c, _, err := dialRelay(t, relayEnv(t, env, up.srv.URL, auth.Need{}), bearer(key.Secret))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte("bye?")); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4100 || ce.Reason != "upstream says bye" {
		t.Fatalf("want the upstream's 4100, got %v", err)
	}
}

// Client→upstream messages obey the tier's message rate: past the free
// tier's 60 a minute the client is closed with 1008 and the upstream too.
func TestRelayMessageRate(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, nil)
	up := newEchoUpstream(t)
	c, _, err := dialRelay(t, relayEnv(t, env, up.srv.URL, auth.Need{}), bearer(key.Secret))
	if err != nil {
		t.Fatal(err)
	}
	limit := keyhub.TierFree.Limits().WSMessagesPerMinute
	for i := 0; i < limit; i++ {
		echo(t, c, "m")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte("one too many")); err != nil {
		t.Fatal(err)
	}
	expectClose(t, c, websocket.StatusPolicyViolation, waitLimit)
	if got := up.waitClose(t, 1); got != websocket.StatusPolicyViolation {
		t.Fatalf("the upstream saw close %d", got)
	}
}

// Admission before the upgrade: no header credential or ticket is a 401
// (the first message belongs to the upstream), a missing scope a 403, a
// second connection over the tier's cap a 429, an unreachable upstream
// the gateway's answer, and a ticket works.
func TestRelayAdmission(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	jwt := env.Token(t, "alice@example.com")
	key := createKey(t, env, jwt, map[string]any{"name": "no events", "scopes": []string{"keys:read", "ws:connect"}})
	up := newEchoUpstream(t)
	url := relayEnv(t, env, up.srv.URL, auth.Need{})

	_, resp, err := dialRelay(t, url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no credential: %v %v", resp, err)
	}
	scoped := relayEnv(t, env, up.srv.URL, auth.Need{Scope: keyhub.ScopeEventsRead})
	_, resp, err = dialRelay(t, scoped, bearer(key.Secret))
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("missing scope: %v %v", resp, err)
	}

	var ticket api.WSTicket
	env.Post(t, "/v1/ws/tickets", key.Secret, nil).Want(t, http.StatusCreated, "").JSON(t, &ticket)
	c, _, err := dialRelay(t, url+"?ticket="+ticket.Ticket, nil)
	if err != nil {
		t.Fatalf("ticket: %v", err)
	}
	echo(t, c, "by ticket")
	_, resp, err = dialRelay(t, url, bearer(key.Secret))
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("over the connection cap: %v %v", resp, err)
	}
	c.Close(websocket.StatusNormalClosure, "")
	up.waitClose(t, 1)
	// The slot is free once the server has released it, a moment after
	// the upstream saw its side close.
	waitConnections(t, env, jwt, 0)

	down := relayEnv(t, env, "ws://127.0.0.1:1/nothing", auth.Need{})
	_, resp, err = dialRelay(t, down, bearer(key.Secret))
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("upstream down: %v %v", resp, err)
	}
	// The refused dial gave its slot back.
	waitConnections(t, env, jwt, 0)
	c, _, err = dialRelay(t, url, bearer(key.Secret))
	if err != nil {
		t.Fatalf("after the refused dial: %v", err)
	}
	echo(t, c, "again")
}

// An upgrade that announces a body is refused at once with 400, on keyhub's
// own socket and a relayed one: it used to hold a pending slot for the
// whole authentication timeout while the body never came.
func TestUpgradeWithBodyRefusedAtOnce(t *testing.T) {
	t.Parallel()
	env := newEnv(t, map[string]string{"WS_AUTH_TIMEOUT": "30s"})
	up := newEchoUpstream(t)
	relayURL := relayEnv(t, env, up.srv.URL, auth.Need{})
	for _, target := range []string{strings.TrimPrefix(env.URL, "http://") + "/v1/ws", strings.TrimPrefix(relayURL, "ws://") + "/"} {
		host, path, _ := strings.Cut(target, "/")
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /%s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 10\r\n\r\n", path, host)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: no answer within 5 s: %v", target, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || errorCode(t, body) != string(keyhub.CodeValidation) {
			t.Fatalf("%s: %d %s", target, resp.StatusCode, body)
		}
	}
}
