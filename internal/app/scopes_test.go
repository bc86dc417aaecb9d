package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket/wsjson"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/api/identity"
	"github.com/keyhub/keyhub/internal/apitest"
)

// identityUpstream is a product behind the gateway: it records the scopes
// each request's signed identity and convenience header carry.
type identityUpstream struct {
	mu    sync.Mutex
	heard [][2]string // the token's scopes, the Keyhub-Scopes header
}

func (u *identityUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var claims identity.Claims
	if parts := strings.Split(r.Header.Get(identity.Header), "."); len(parts) == 3 {
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		_ = json.Unmarshal(payload, &claims)
	}
	u.mu.Lock()
	u.heard = append(u.heard, [2]string{strings.Join(claims.Scopes, ","), r.Header.Get(identity.HeaderScopes)})
	u.mu.Unlock()
}

func (u *identityUpstream) last() [2]string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.heard[len(u.heard)-1]
}

// subscribe asks the socket for the events topic and waits for the answer.
func (s *socket) subscribe(t *testing.T) {
	t.Helper()
	if answer := s.ask(t, map[string]any{"type": "subscribe", "topic": "events"}, "subscribed"); answer["type"] != "subscribed" {
		t.Fatalf("subscribe: %v", answer)
	}
}

// A key's scopes changed on one process apply on the other at once it
// hears the change: its cached principal (GET /v1/me, the scope checks),
// the gateway's signed identity (never the old scopes, though B signed one
// for the key a moment before), and its open sockets: those admitted with
// ws:connect, or subscribed to events, close with 4001 "scope removed" on
// both processes when the key loses that scope; the others stay open.
func TestScopeChangeOnEveryProcess(t *testing.T) {
	t.Parallel()
	upstream := &identityUpstream{}
	product := httptest.NewServer(upstream)
	t.Cleanup(product.Close)
	a, b, jwt := cluster(t, map[string]string{"PRODUCT_SCOPES": "app:read", "GATEWAY_ROUTES": "/app/ " + product.URL + " scope=app:read"})
	var me api.Me
	a.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "").JSON(t, &me)
	if _, err := a.Pool.Exec(context.Background(), "UPDATE owners SET tier = 'team' WHERE id = $1", me.OwnerID); err != nil {
		t.Fatal(err)
	}
	all := []string{"keys:read", "events:read", "ws:connect", "app:read"}
	key := createKey(t, a, jwt, map[string]any{"name": "narrowed", "scopes": all})
	reader := createKey(t, a, jwt, map[string]any{"name": "reader", "scopes": all})
	proxied := func(env *apitest.Env, secret string) apitest.Response {
		return env.Do(t, apitest.Request{Method: http.MethodGet, Path: "/app/x", Cred: secret})
	}
	// B caches the key and signs an identity for it.
	b.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, "")
	proxied(b, key.Secret).Want(t, http.StatusOK, "")
	if got := upstream.last(); got != [2]string{"keys:read,events:read,ws:connect,app:read", "keys:read,events:read,ws:connect,app:read"} {
		t.Fatalf("the upstream heard %q before the change", got)
	}
	connected := []*socket{connect(t, a, key.Secret), connect(t, b, key.Secret)}
	subscribed, idle := connect(t, b, reader.Secret), connect(t, a, reader.Secret)
	subscribed.subscribe(t)

	patch := func(env *apitest.Env, k api.CreatedKey, scopes ...string) {
		t.Helper()
		env.Do(t, apitest.Request{Method: http.MethodPatch, Path: "/v1/keys/" + k.ID.String(), Cred: jwt,
			Body: map[string]any{"scopes": scopes}}).Want(t, http.StatusOK, "")
	}
	patch(a, key, "keys:read", "events:read", "app:read")
	for _, s := range connected {
		s.expectClose(t, 4001, 5*time.Second)
		if s.reason != "scope removed" {
			t.Fatalf("closed with reason %q, want \"scope removed\"", s.reason)
		}
	}
	eventually(t, 5*time.Second, func() string {
		b.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, "").JSON(t, &me)
		if !slices.Equal(me.Scopes, []string{"keys:read", "events:read", "app:read"}) {
			return "B still says " + strings.Join(me.Scopes, ",")
		}
		return ""
	})
	// From the moment B knows, its gateway signs the new scopes.
	proxied(b, key.Secret).Want(t, http.StatusOK, "")
	if got := upstream.last(); got != [2]string{"keys:read,events:read,app:read", "keys:read,events:read,app:read"} {
		t.Fatalf("the upstream heard %q after the change", got)
	}
	if s, status, body := connectURL(t, b.URL, key.Secret); s != nil || status != http.StatusForbidden || !strings.Contains(body, "INSUFFICIENT_SCOPE") {
		t.Fatalf("upgrade without ws:connect: %d %s", status, body)
	}

	// Taking app:read away on B closes the gateway to the key on A.
	a.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, "")
	patch(b, key, "keys:read")
	eventually(t, 5*time.Second, func() string {
		if r := proxied(a, key.Secret); r.Status != http.StatusForbidden || r.ErrorCode() != "INSUFFICIENT_SCOPE" {
			return "A's gateway still admits it: " + string(r.Body)
		}
		return ""
	})

	// events:read is what a subscribed socket needs, not an idle one.
	patch(b, reader, "ws:connect", "app:read")
	subscribed.expectClose(t, 4001, 5*time.Second)
	if subscribed.reason != "scope removed" {
		t.Fatalf("subscribed socket closed with reason %q", subscribed.reason)
	}
	idle.expectOpen(t)
	if answer := idle.ask(t, map[string]any{"type": "subscribe", "topic": "events"}, "subscribed"); answer["code"] != "INSUFFICIENT_SCOPE" {
		t.Fatalf("the idle socket's subscribe after events:read was taken away: %v", answer)
	}
	if answer := idle.ask(t, map[string]any{"type": "whoami"}, "whoami"); !strings.Contains(mustJSON(t, answer), `"scopes":["ws:connect","app:read"]`) {
		t.Fatalf("whoami on the idle socket: %v", answer)
	}
	idle.expectOpen(t)
}

// ask sends msg and returns the first answer of type want, or an error.
func (s *socket) ask(t *testing.T, msg map[string]any, want string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.mu.Lock()
	seen := len(s.msgs)
	s.mu.Unlock()
	if err := wsjson.Write(ctx, s.conn, msg); err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		s.mu.Lock()
		for _, m := range s.msgs[seen:] {
			if m["type"] == want || m["type"] == "error" {
				s.mu.Unlock()
				return m
			}
		}
		s.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no answer to %v", msg)
	return nil
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
