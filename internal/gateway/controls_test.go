package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// The controls on a key (disable, allowed_cidrs) on a gateway route:
// requests and relayed WebSockets are admitted by the one admission step
// (auth.Gate), and these tests hold both to it, with a real upstream.

// waitLimit bounds the waits that promise nothing: only how long a
// failure takes to show, so generous for a loaded machine.
const waitLimit = 15 * time.Second

// productUpstream is a product behind a route: plain requests are
// recorded and answered "ok"; a WebSocket is echoed, and how each one
// ended (its close code) is sent on closes.
type productUpstream struct {
	*recorder
	closes chan websocket.StatusCode
}

func newProductUpstream(t *testing.T) *productUpstream {
	t.Helper()
	u := &productUpstream{closes: make(chan websocket.StatusCode, 16)}
	u.recorder = newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			_, _ = io.WriteString(w, "ok")
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		ctx := context.Background()
		for {
			typ, data, err := c.Read(ctx)
			if err != nil {
				u.closes <- websocket.CloseStatus(err)
				return
			}
			if err := c.Write(ctx, typ, data); err != nil {
				return
			}
		}
	})
	return u
}

// routeSocket is a relayed WebSocket under /app/ that echoed one message.
type routeSocket struct {
	conn   *websocket.Conn
	closed chan error // the client side's read error, once it ends
}

// openRouteSocket opens /app/socket with the key in the headers (or
// ?ticket= when ticket is set), from the client address from ("" for the
// peer's own), and answers the open socket after one echo, or nil and the
// refusal ("401 KEY_DISABLED").
func openRouteSocket(t *testing.T, env *apitest.Env, secret, ticket, from string) (*routeSocket, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	target := "ws" + strings.TrimPrefix(env.URL, "http") + "/app/socket"
	header := http.Header{}
	if ticket != "" {
		target += "?ticket=" + url.QueryEscape(ticket)
	} else {
		header.Set("X-Api-Key", secret)
	}
	if from != "" {
		header.Set("X-Forwarded-For", from)
	}
	c, resp, err := websocket.Dial(ctx, target, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s: %v", target, err)
		}
		return nil, fmt.Sprintf("%d %s", resp.StatusCode, errorCodeOf(t, resp))
	}
	t.Cleanup(func() { c.CloseNow() })
	if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	_, got, err := c.Read(ctx)
	var ce websocket.CloseError
	if errors.As(err, &ce) { // refused after the upgrade
		return nil, fmt.Sprintf("closed %d %s", ce.Code, ce.Reason)
	}
	if err != nil || string(got) != "hello" {
		t.Fatalf("echo through the route: %q %v", got, err)
	}
	s := &routeSocket{conn: c, closed: make(chan error, 1)}
	go func() {
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				s.closed <- err
				return
			}
		}
	}()
	return s, "open"
}

// expectClose waits for the client side of s to close with code and
// reason, and for the upstream side of one relayed socket to close with
// the same code.
func (s *routeSocket) expectClose(t *testing.T, up *productUpstream, code websocket.StatusCode, reason string) {
	t.Helper()
	select {
	case err := <-s.closed:
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != code || ce.Reason != reason {
			t.Fatalf("client side ended with %v, want %d %q", err, code, reason)
		}
	case <-time.After(waitLimit):
		t.Fatal("the client side is still open")
	}
	if got := up.nextClose(t); got != code {
		t.Fatalf("the upstream side closed with %d, want %d", got, code)
	}
}

// nextClose waits for a relayed socket's upstream side to end and answers
// its close code.
func (u *productUpstream) nextClose(t *testing.T) websocket.StatusCode {
	t.Helper()
	select {
	case got := <-u.closes:
		return got
	case <-time.After(waitLimit):
		t.Fatal("the upstream side is still open")
		return 0
	}
}

// errorCodeOf is the code of resp's JSON error ("" if none).
func errorCodeOf(t *testing.T, resp *http.Response) string {
	t.Helper()
	raw, _ := io.ReadAll(resp.Body)
	return apitest.Response{Status: resp.StatusCode, Body: raw}.ErrorCode()
}

// routeRequest sends method /app/thing with secret from the client
// address from ("" for the peer's own) and answers "200" or the refusal
// ("401 KEY_DISABLED").
func routeRequest(t *testing.T, env *apitest.Env, method, secret, from string) string {
	t.Helper()
	req := apitest.Request{Method: method, Path: "/app/thing", Headers: map[string]string{"X-Api-Key": secret}}
	if from != "" {
		req.Headers["X-Forwarded-For"] = from
	}
	r := env.Do(t, req)
	if r.Status == http.StatusOK {
		return "200"
	}
	return fmt.Sprintf("%d %s", r.Status, r.ErrorCode())
}

// paths names the requests an upstream received by method and path (the
// rest holds signed identities, not worth a log).
func paths(seen []received) string {
	var out []string
	for _, r := range seen {
		out = append(out, r.Method+" "+r.Path)
	}
	return strings.Join(out, ", ")
}

// setTier gives the owner of jwt's user tier.
func setTier(t *testing.T, env *apitest.Env, jwt, tier string) {
	t.Helper()
	var me api.Me
	env.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "").JSON(t, &me)
	if _, err := env.Pool.Exec(context.Background(), "UPDATE owners SET tier = $1 WHERE id = $2", tier, me.OwnerID); err != nil {
		t.Fatal(err)
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

// A disabled key, and a key it created, is refused on a gateway route with
// 401 KEY_DISABLED: its requests (which never reach the upstream), its
// WebSocket upgrades with the key in the headers or a ticket minted before
// the disable; its relayed sockets already open close with 4001 "key
// disabled" on both sides. Enabled again, each works.
func TestProxyRefusesDisabledKeys(t *testing.T) {
	t.Parallel()
	up := newProductUpstream(t)
	env := apitest.New(t, map[string]string{"GATEWAY_ROUTES": "/app/ " + up.URL,
		// Each refusal is a failed authentication of 127.0.0.1: more
		// than the default burst of them.
		"AUTH_FAILURE_BURST": "100"})
	jwt := env.Token(t, uniqueEmail("disabled"))
	setTier(t, env, jwt, "team") // more than one key and connection
	var parent, child api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "parent"}).Want(t, http.StatusCreated, "").JSON(t, &parent)
	env.Post(t, "/v1/keys", parent.Secret, map[string]any{"name": "child"}).Want(t, http.StatusCreated, "").JSON(t, &child)
	keys := []api.CreatedKey{parent, child}
	open := map[string]*routeSocket{}
	minted := map[string]string{}
	for _, k := range keys {
		if got := routeRequest(t, env, http.MethodGet, k.Secret, ""); got != "200" {
			t.Fatalf("%s key before the disable: %s", k.Name, got)
		}
		open[k.Name], _ = openRouteSocket(t, env, k.Secret, "", "")
		if open[k.Name] == nil {
			t.Fatalf("%s key's socket before the disable", k.Name)
		}
		minted[k.Name] = mintTicket(t, env, k.Secret, "")
	}
	reached := len(up.requests())

	env.Post(t, "/v1/keys/"+parent.ID.String()+"/disable", jwt, nil).Want(t, http.StatusOK, "")
	for _, k := range keys {
		open[k.Name].expectClose(t, up, 4001, "key disabled")
	}
	const want = "401 KEY_DISABLED"
	for _, k := range keys {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			if got := routeRequest(t, env, method, k.Secret, ""); got != want {
				t.Errorf("%s key, %s /app/thing: %s, want %s", k.Name, method, got, want)
			}
		}
		if _, got := openRouteSocket(t, env, k.Secret, "", ""); got != want {
			t.Errorf("%s key, socket with the key in the headers: %s, want %s", k.Name, got, want)
		}
		if _, got := openRouteSocket(t, env, k.Secret, minted[k.Name], ""); got != want {
			t.Errorf("%s key, socket with a ticket minted before the disable: %s, want %s", k.Name, got, want)
		}
	}
	if seen := up.requests(); len(seen) != reached {
		t.Errorf("the upstream received %d requests of disabled keys: %s", len(seen)-reached, paths(seen[reached:]))
	}

	env.Post(t, "/v1/keys/"+parent.ID.String()+"/enable", jwt, nil).Want(t, http.StatusOK, "")
	for _, k := range keys {
		if got := routeRequest(t, env, http.MethodPost, k.Secret, ""); got != "200" {
			t.Errorf("%s key after enable: %s", k.Name, got)
		}
		if _, got := openRouteSocket(t, env, k.Secret, "", ""); got != "open" {
			t.Errorf("%s key after enable, socket with the key in the headers: %s", k.Name, got)
		}
		if _, got := openRouteSocket(t, env, k.Secret, mintTicket(t, env, k.Secret, ""), ""); got != "open" {
			t.Errorf("%s key after enable, socket with a ticket: %s", k.Name, got)
		}
	}
}

// A key restricted to networks (allowed_cidrs) is 403 IP_NOT_ALLOWED on a
// gateway route from outside them, judged on the client address the
// trusted proxy reports (requests, which never reach the upstream, and
// WebSocket upgrades by header or ticket); from inside each works. Its
// relayed socket open from inside closes with 4001 "address not allowed"
// on both sides once the key's networks no longer hold its address.
func TestProxyRefusesKeysOutsideTheirNetworks(t *testing.T) {
	t.Parallel()
	up := newProductUpstream(t)
	env := apitest.New(t, map[string]string{"GATEWAY_ROUTES": "/app/ " + up.URL, "TRUSTED_PROXIES": "127.0.0.1/32"})
	jwt := env.Token(t, uniqueEmail("cidrs"))
	setTier(t, env, jwt, "team") // more than one connection at a time
	const inside, outside = "203.0.113.9", "198.51.100.7"
	var pinned api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "pinned", "allowed_cidrs": []string{"203.0.113.0/24"}}).Want(t, http.StatusCreated, "").JSON(t, &pinned)

	const want = "403 IP_NOT_ALLOWED"
	for _, from := range []string{outside, ""} { // "": the proxy's own address
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			if got := routeRequest(t, env, method, pinned.Secret, from); got != want {
				t.Errorf("%s /app/thing from %q: %s, want %s", method, from, got, want)
			}
		}
		if _, got := openRouteSocket(t, env, pinned.Secret, "", from); got != want {
			t.Errorf("socket with the key in the headers from %q: %s, want %s", from, got, want)
		}
		if _, got := openRouteSocket(t, env, pinned.Secret, mintTicket(t, env, pinned.Secret, inside), from); got != want {
			t.Errorf("socket with a ticket minted inside, from %q: %s, want %s", from, got, want)
		}
	}
	if seen := up.requests(); len(seen) != 0 {
		t.Fatalf("the upstream received requests from outside: %s", paths(seen))
	}

	if got := routeRequest(t, env, http.MethodGet, pinned.Secret, inside); got != "200" {
		t.Fatalf("GET /app/thing from inside: %s", got)
	}
	if xff := up.last(t).Header.Get("X-Forwarded-For"); xff != inside {
		t.Errorf("the upstream was told the client is %q, want %s", xff, inside)
	}
	byTicket, got := openRouteSocket(t, env, pinned.Secret, mintTicket(t, env, pinned.Secret, inside), inside)
	if byTicket == nil {
		t.Fatalf("socket with a ticket from inside: %s", got)
	}
	byTicket.conn.Close(websocket.StatusNormalClosure, "")
	if got := up.nextClose(t); got != websocket.StatusNormalClosure {
		t.Fatalf("closing the ticket's socket closed the upstream side with %d", got)
	}
	sock, got := openRouteSocket(t, env, pinned.Secret, "", inside)
	if sock == nil {
		t.Fatalf("socket with the key in the headers from inside: %s", got)
	}
	env.Do(t, apitest.Request{Method: http.MethodPatch, Path: "/v1/keys/" + pinned.ID.String(), Cred: jwt,
		Body: map[string]any{"allowed_cidrs": []string{"192.0.2.0/24"}}}).Want(t, http.StatusOK, "")
	sock.expectClose(t, up, 4001, "address not allowed")
}
