package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// patchKey sends PATCH /v1/keys/{id}.
func patchKey(t *testing.T, env *apitest.Env, cred string, k api.CreatedKey, body any) apitest.Response {
	t.Helper()
	return env.Do(t, apitest.Request{Method: http.MethodPatch, Path: "/v1/keys/" + k.ID.String(), Cred: cred, Body: body})
}

// refusedAs checks that each key is refused on /v1/me with status and code.
func refusedAs(t *testing.T, env *apitest.Env, status int, code string, keys ...api.CreatedKey) {
	t.Helper()
	for _, k := range keys {
		if r := env.Get(t, "/v1/me", k.Secret); r.Status != status || r.ErrorCode() != code {
			t.Errorf("key %q: %d %s, want %d %s", k.Name, r.Status, r.Body, status, code)
		}
	}
}

// PATCH changes name, metadata and allowed_cidrs; each change is an
// `updated` event listing the fields that changed (with actor, IP and user
// agent), and a PATCH that changes nothing writes none. Bad values are
// 400 VALIDATION_FAILED.
func TestKeyUpdate(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "patch@example.com")
	k := makeKey(t, env, jwt, "laptop")
	if string(k.Metadata) != "{}" || k.AllowedCIDRs == nil || len(k.AllowedCIDRs) != 0 || k.DisabledAt != nil {
		t.Fatalf("a new key's controls: %s %v %v", k.Metadata, k.AllowedCIDRs, k.DisabledAt)
	}
	var got api.Key
	patchKey(t, env, jwt, k, map[string]any{"name": " desk ", "metadata": map[string]any{"team": "infra", "n": 7}}).Want(t, http.StatusOK, "").JSON(t, &got)
	if got.Name != "desk" || string(got.Metadata) != `{"n":7,"team":"infra"}` {
		t.Fatalf("after patch: %q %s", got.Name, got.Metadata)
	}
	patchKey(t, env, jwt, k, map[string]any{"allowed_cidrs": []string{"10.1.2.3/8", "2001:db8::1/32", "127.0.0.1", "10.0.0.0/8"}}).Want(t, http.StatusOK, "").JSON(t, &got)
	if want := []string{"10.0.0.0/8", "2001:db8::/32", "127.0.0.1/32"}; !slices.Equal(got.AllowedCIDRs, want) || got.Name != "desk" {
		t.Fatalf("allowed_cidrs %v, want normalized %v (name kept: %q)", got.AllowedCIDRs, want, got.Name)
	}
	// The same values again change nothing.
	patchKey(t, env, jwt, k, map[string]any{"name": "desk", "metadata": map[string]any{"team": "infra", "n": 7}}).Want(t, http.StatusOK, "")
	env.Get(t, "/v1/keys/"+k.ID.String(), jwt).Want(t, http.StatusOK, "").JSON(t, &got)
	if got.Name != "desk" || len(got.AllowedCIDRs) != 3 || string(got.Metadata) != `{"n":7,"team":"infra"}` {
		t.Fatalf("read back: %+v", got)
	}

	var events api.EventList
	env.Get(t, "/v1/keys/"+k.ID.String()+"/events?type=updated", jwt).Want(t, http.StatusOK, "").JSON(t, &events)
	if len(events.Data) != 2 {
		t.Fatalf("%d updated events, want 2: %+v", len(events.Data), events.Data)
	}
	var changed []string
	for _, e := range events.Data {
		var d struct{ Changed []string }
		if err := json.Unmarshal(e.Details, &d); err != nil {
			t.Fatal(err)
		}
		changed = append(changed, strings.Join(d.Changed, ","))
		if e.ActorUserID == nil || e.IPAddress == nil || e.UserAgent == nil {
			t.Errorf("event without its actor, address or user agent: %+v", e)
		}
	}
	if want := []string{"allowed_cidrs", "name,metadata"}; !slices.Equal(changed, want) {
		t.Fatalf("changed fields %v, want %v (newest first)", changed, want)
	}

	for _, bad := range []any{
		map[string]any{"name": ""},
		map[string]any{"name": nil},
		map[string]any{"metadata": []int{1}},
		map[string]any{"metadata": nil},
		map[string]any{"metadata": "text"},
		map[string]any{"metadata": map[string]string{"big": strings.Repeat("x", 4096)}},
		map[string]any{"allowed_cidrs": nil},
		map[string]any{"allowed_cidrs": []string{"10.0.0.0/33"}},
		map[string]any{"allowed_cidrs": []string{"example.com"}},
		map[string]any{"allowed_cidrs": []string{"fe80::1%eth0"}},
		map[string]any{"allowed_cidrs": slices.Repeat([]string{"10.0.0.1"}, 33)},
	} {
		patchKey(t, env, jwt, k, bad).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	}
	patchKey(t, env, jwt, k, map[string]any{"prefix": "mk_x"}).Want(t, http.StatusBadRequest, "INVALID_JSON")
	other := env.Token(t, "patch-other@example.com")
	patchKey(t, env, other, k, map[string]any{"name": "mine"}).Want(t, http.StatusNotFound, "NOT_FOUND")
}

// On create, a null metadata is absent (the document makes it nullable
// there): the key gets {}. PATCH refuses null (TestKeyUpdate).
func TestCreateKeyNullMetadata(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "null-metadata@example.com")
	var k api.CreatedKey
	env.Post(t, "/v1/keys", jwt, json.RawMessage(`{"name":"laptop","metadata":null}`)).Want(t, http.StatusCreated, "").JSON(t, &k)
	if string(k.Metadata) != "{}" {
		t.Fatalf("metadata %s, want {}", k.Metadata)
	}
}

// allowed_cidrs: a request from outside the key's networks, judged on the
// trusted client address, is 403 IP_NOT_ALLOWED on REST, forward auth and
// the WebSocket upgrade (the key in the headers here; tickets, first
// messages and gateway routes in internal/ws's
// TestAllowedCIDRsOnEverySocketDoor and internal/gateway's
// TestProxyRefusesKeysOutsideTheirNetworks); one from inside works.
// Settable at create time.
func TestAllowedCIDRs(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"})
	jwt := env.Token(t, "cidr@example.com")
	setTier(t, env, jwt, "team")
	var pinned api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "pinned", "allowed_cidrs": []string{"203.0.113.0/24", "2001:db8::/32"}}).Want(t, http.StatusCreated, "").JSON(t, &pinned)
	if !slices.Equal(pinned.AllowedCIDRs, []string{"203.0.113.0/24", "2001:db8::/32"}) {
		t.Fatalf("created with %v", pinned.AllowedCIDRs)
	}
	from := func(path, addr string) apitest.Response {
		return env.Do(t, apitest.Request{Method: http.MethodGet, Path: path, Cred: pinned.Secret, Headers: map[string]string{"X-Forwarded-For": addr}})
	}
	from("/v1/me", "203.0.113.9").Want(t, http.StatusOK, "")
	from("/v1/me", "2001:db8:1::5").Want(t, http.StatusOK, "")
	from("/v1/me", "198.51.100.1").Want(t, http.StatusForbidden, "IP_NOT_ALLOWED")
	from("/v1/authz", "198.51.100.1").Want(t, http.StatusForbidden, "IP_NOT_ALLOWED")
	from("/v1/authz", "203.0.113.200").Want(t, http.StatusOK, "")
	upgrade := func(addr string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(env.URL, "http")+"/v1/ws", &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + pinned.Secret}, "X-Forwarded-For": {addr}},
		})
		if err != nil {
			if resp == nil {
				t.Fatalf("dial: %v", err)
			}
			raw, _ := io.ReadAll(resp.Body)
			return fmt.Sprintf("%d %s", resp.StatusCode, apitest.Response{Body: raw}.ErrorCode())
		}
		c.Close(websocket.StatusNormalClosure, "")
		return "upgraded"
	}
	if got := upgrade("198.51.100.1"); got != "403 IP_NOT_ALLOWED" {
		t.Errorf("WebSocket upgrade from outside: %s", got)
	}
	if got := upgrade("203.0.113.9"); got != "upgraded" {
		t.Errorf("WebSocket upgrade from inside: %s", got)
	}
	// Without a trusted X-Forwarded-For, the peer (127.0.0.1) is the client.
	env.Get(t, "/v1/me", pinned.Secret).Want(t, http.StatusForbidden, "IP_NOT_ALLOWED")
	// Opening the list to loopback lets it in, at once (the cache hears it).
	patchKey(t, env, jwt, pinned, map[string]any{"allowed_cidrs": []string{"127.0.0.0/8"}}).Want(t, http.StatusOK, "")
	env.Get(t, "/v1/me", pinned.Secret).Want(t, http.StatusOK, "")
	from("/v1/me", "203.0.113.9").Want(t, http.StatusForbidden, "IP_NOT_ALLOWED")
	patchKey(t, env, jwt, pinned, map[string]any{"allowed_cidrs": []string{}}).Want(t, http.StatusOK, "")
	from("/v1/me", "198.51.100.1").Want(t, http.StatusOK, "")
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "bad", "allowed_cidrs": []string{"300.0.0.0/8"}}).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
}

// Disabling is not revoking: a disabled key, and every key obtained
// through it, is refused (401 KEY_DISABLED) on REST, forward auth and the
// verify API, and works again once enabled; writes re-check it in their
// transaction; nothing is replaced; each is an event.
func TestDisableEnable(t *testing.T) {
	t.Parallel()
	const verifyToken = "verify-token-0123456789abcdefghijklmnop"
	env := apitest.New(t, map[string]string{"VERIFY_TOKENS": verifyToken})
	jwt := env.Token(t, "disable@example.com")
	setTier(t, env, jwt, "team")
	parent := makeKey(t, env, jwt, "parent")
	child := makeKey(t, env, parent.Secret, "child")
	grandchild := makeKey(t, env, child.Secret, "grandchild")
	unrelated := makeKey(t, env, jwt, "unrelated")
	works(t, env, parent, child, grandchild, unrelated) // now cached

	var got api.Key
	env.Post(t, "/v1/keys/"+parent.ID.String()+"/disable", jwt, nil).Want(t, http.StatusOK, "").JSON(t, &got)
	if got.DisabledAt == nil || got.Status != "active" || got.RevokedAt != nil || got.ReplacedBy != nil {
		t.Fatalf("disabled key: %+v", got)
	}
	refusedAs(t, env, http.StatusUnauthorized, "KEY_DISABLED", parent, child, grandchild)
	works(t, env, unrelated)
	env.Get(t, "/v1/authz", child.Secret).Want(t, http.StatusUnauthorized, "KEY_DISABLED")
	var v api.KeyVerification
	env.Post(t, "/v1/keys/verify", verifyToken, map[string]any{"key": grandchild.Secret}).Want(t, http.StatusOK, "").JSON(t, &v)
	if v.Valid || v.Code != "KEY_DISABLED" {
		t.Fatalf("verify a disabled key's child: %+v", v)
	}
	env.Post(t, "/v1/keys", child.Secret, map[string]any{"name": "escape"}).Want(t, http.StatusUnauthorized, "KEY_DISABLED")
	// Disabling again changes nothing; a disabled key is not refreshed.
	env.Post(t, "/v1/keys/"+parent.ID.String()+"/disable", jwt, nil).Want(t, http.StatusOK, "")
	env.Post(t, "/v1/keys/"+child.ID.String()+"/refresh", jwt, nil).Want(t, http.StatusConflict, "KEY_NOT_ACTIVE")

	env.Post(t, "/v1/keys/"+parent.ID.String()+"/enable", jwt, nil).Want(t, http.StatusOK, "").JSON(t, &got)
	if got.DisabledAt != nil {
		t.Fatalf("enabled key: %+v", got)
	}
	works(t, env, parent, child, grandchild, unrelated)
	env.Post(t, "/v1/keys/verify", verifyToken, map[string]any{"key": grandchild.Secret}).Want(t, http.StatusOK, "").JSON(t, &v)
	if !v.Valid {
		t.Fatalf("verify after enable: %+v", v)
	}

	// A key disabling its own ancestor disables itself; the owner enables it.
	env.Post(t, "/v1/keys/"+parent.ID.String()+"/disable", child.Secret, nil).Want(t, http.StatusOK, "")
	refusedAs(t, env, http.StatusUnauthorized, "KEY_DISABLED", child)
	env.Post(t, "/v1/keys/"+parent.ID.String()+"/enable", child.Secret, nil).Want(t, http.StatusUnauthorized, "KEY_DISABLED")
	env.Post(t, "/v1/keys/"+parent.ID.String()+"/enable", jwt, nil).Want(t, http.StatusOK, "")
	works(t, env, child)

	var events api.EventList
	env.Get(t, "/v1/keys/"+parent.ID.String()+"/events?type=disabled,enabled", jwt).Want(t, http.StatusOK, "").JSON(t, &events)
	var types []string
	for _, e := range events.Data {
		types = append(types, e.Type)
	}
	if want := []string{"enabled", "disabled", "enabled", "disabled"}; !slices.Equal(types, want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	// A revoked key is neither disabled nor enabled.
	env.Delete(t, "/v1/keys/"+unrelated.ID.String(), jwt).Want(t, http.StatusOK, "")
	env.Post(t, "/v1/keys/"+unrelated.ID.String()+"/disable", jwt, nil).Want(t, http.StatusConflict, "KEY_NOT_ACTIVE")
}

// PATCH scopes: a session sets any known scope (product scopes too), a key
// only scopes it holds itself (403 INSUFFICIENT_SCOPE, as at create); the
// new scopes apply to the key's next request; unknown names are 400
// INVALID_SCOPE, an empty or null list 400 VALIDATION_FAILED; the event
// lists "scopes"; a revoked or expired key is 409 KEY_NOT_ACTIVE.
func TestKeyUpdateScopes(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"PRODUCT_SCOPES": "app:read,app:write"})
	jwt := env.Token(t, "scopes@example.com")
	setTier(t, env, jwt, "team")
	var actor api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "actor", "scopes": []string{"keys:read", "keys:write", "app:read"}}).Want(t, http.StatusCreated, "").JSON(t, &actor)
	var target api.CreatedKey
	env.Post(t, "/v1/keys", actor.Secret, map[string]any{"name": "target", "scopes": []string{"keys:read"}}).Want(t, http.StatusCreated, "").JSON(t, &target)

	// The session narrows the actor: it can no longer write, at once.
	var got api.Key
	patchKey(t, env, jwt, actor, map[string]any{"scopes": []string{"keys:read", "app:read"}}).Want(t, http.StatusOK, "").JSON(t, &got)
	if want := []string{"keys:read", "app:read"}; !slices.Equal(got.Scopes, want) {
		t.Fatalf("scopes %v, want %v", got.Scopes, want)
	}
	patchKey(t, env, actor.Secret, target, map[string]any{"name": "renamed"}).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")
	var me api.Me
	env.Get(t, "/v1/me", actor.Secret).Want(t, http.StatusOK, "").JSON(t, &me)
	if want := []string{"keys:read", "app:read"}; !slices.Equal(me.Scopes, want) {
		t.Fatalf("the narrowed key's /v1/me says %v, want %v", me.Scopes, want)
	}
	// ... and widens it again, with a product scope the key never had.
	patchKey(t, env, jwt, actor, map[string]any{"scopes": []string{"keys:read", "keys:write", "app:read", "app:write"}}).Want(t, http.StatusOK, "")
	// A key gives only what it holds: ws:connect is not the actor's.
	patchKey(t, env, actor.Secret, target, map[string]any{"scopes": []string{"keys:read", "ws:connect"}}).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")
	patchKey(t, env, actor.Secret, target, map[string]any{"scopes": []string{"app:write", "keys:read"}}).Want(t, http.StatusOK, "").JSON(t, &got)
	if want := []string{"keys:read", "app:write"}; !slices.Equal(got.Scopes, want) {
		t.Fatalf("target's scopes %v, want %v", got.Scopes, want)
	}
	// The same set in another order changes nothing.
	patchKey(t, env, jwt, target, map[string]any{"scopes": []string{"app:write", "keys:read"}}).Want(t, http.StatusOK, "")

	for body, code := range map[string]string{
		`{"scopes":["keys:admin"]}`: "INVALID_SCOPE",
		`{"scopes":["app:delete"]}`: "INVALID_SCOPE",
		`{"scopes":[]}`:             "VALIDATION_FAILED",
		`{"scopes":null}`:           "VALIDATION_FAILED",
	} {
		patchKey(t, env, jwt, target, json.RawMessage(body)).Want(t, http.StatusBadRequest, code)
	}
	var events api.EventList
	env.Get(t, "/v1/keys/"+target.ID.String()+"/events?type=updated", jwt).Want(t, http.StatusOK, "").JSON(t, &events)
	if len(events.Data) != 1 || !strings.Contains(string(events.Data[0].Details), `"changed":["scopes"]`) || events.Data[0].ActorKeyID == nil || *events.Data[0].ActorKeyID != actor.ID {
		t.Fatalf("updated events of the target: %+v", events.Data)
	}

	// Neither a revoked nor an expired key is edited, whatever the field.
	env.Delete(t, "/v1/keys/"+target.ID.String(), jwt).Want(t, http.StatusOK, "")
	patchKey(t, env, jwt, target, map[string]any{"scopes": []string{"keys:read"}}).Want(t, http.StatusConflict, "KEY_NOT_ACTIVE")
	patchKey(t, env, jwt, target, map[string]any{"name": "late"}).Want(t, http.StatusConflict, "KEY_NOT_ACTIVE")
	expired := makeKey(t, env, jwt, "expired")
	if _, err := env.Pool.Exec(context.Background(), "UPDATE api_keys SET created_at = now() - interval '1 hour', expires_at = now() - interval '1 second' WHERE id = $1", expired.ID); err != nil {
		t.Fatal(err)
	}
	patchKey(t, env, jwt, expired, map[string]any{"scopes": []string{"keys:read"}}).Want(t, http.StatusConflict, "KEY_NOT_ACTIVE")
}
