package forwardauth_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyhub/keyhub/api/identity"
	"github.com/keyhub/keyhub/internal/apitest"
)

// keyhubEnv is the configuration the README's snippets expect: the product
// scopes they name, and the gateway (on loopback) trusted to say who the
// client is.
func keyhubEnv(extra map[string]string) map[string]string {
	env := map[string]string{"PRODUCT_SCOPES": "app:read,app:write", "TRUSTED_PROXIES": "127.0.0.1/32"}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// forged are Keyhub- headers a client sends to pass as someone else.
var forged = map[string]string{
	"Keyhub-Identity": "forged", "Keyhub-User-Id": "forged", "Keyhub-Owner-Id": "forged",
	"Keyhub-Key-Id": "forged", "Keyhub-Scopes": "forged", "Keyhub-Tier": "forged",
}

// checkAllowed fails the test unless the gateway's answer came from the
// product, which saw a verified identity of the wanted method and key,
// convenience headers that agree with it, and nothing of the client's
// credential or forged headers.
func checkAllowed(t *testing.T, p *product, got answer, method, keyID string, secrets ...string) {
	t.Helper()
	if got.Status != http.StatusOK || got.Body != "product" {
		t.Fatalf("want the product's 200, got %d %q", got.Status, got.Body)
	}
	all := p.requests()
	last := all[len(all)-1]
	c := last.Caller
	if c == nil || c.AuthMethod != method || (keyID != "" && c.KeyID.String() != keyID) {
		t.Fatalf("the product verified %+v, want a %s identity of key %q", c, method, keyID)
	}
	h := last.Header
	if h.Get(identity.HeaderUserID) != c.UserID.String() || h.Get(identity.HeaderOwnerID) != c.OwnerID.String() ||
		h.Get(identity.HeaderTier) != c.Tier || h.Get(identity.HeaderScopes) != strings.Join(c.Scopes, ",") {
		t.Errorf("the convenience headers disagree with the identity %+v: %v", c, h)
	}
	if keyID == "" && len(h.Values(identity.HeaderKeyID)) != 0 {
		t.Errorf("a user session reached the product with Keyhub-Key-Id %q", h.Values(identity.HeaderKeyID))
	}
	for name, values := range h {
		switch strings.ToLower(strings.ReplaceAll(name, "_", "-")) {
		case "authorization", "x-api-key", "x-makima-api-key":
			t.Errorf("the product received %s", name)
		}
		if strings.HasPrefix(strings.ToLower(name), "keyhub-") && len(values) != 1 {
			t.Errorf("the product received %d values of %s", len(values), name)
		}
		for _, v := range values {
			if v == "forged" {
				t.Errorf("the product received the client's %s", name)
			}
			for _, secret := range secrets {
				if strings.Contains(v, secret) {
					t.Errorf("the product received a credential in %s", name)
				}
			}
		}
	}
}

// invented is a Keyhub- header keyhub never sets: Caddy's snippet drops
// every client Keyhub- header; nginx cannot match a prefix and replaces
// only the six keyhub sets (the README says so).
var invented = map[string]string{"Keyhub-Admin": "forged"}

// withCredential is the forged headers (and more, if given) plus the
// credential in every header keyhub reads (the same key in each is not
// ambiguous).
func withCredential(secret string, headers ...string) map[string]string {
	return withCredentialAnd(nil, secret, headers...)
}

func withCredentialAnd(more map[string]string, secret string, headers ...string) map[string]string {
	h := map[string]string{}
	for k, v := range forged {
		h[k] = v
	}
	for k, v := range more {
		h[k] = v
	}
	for _, name := range headers {
		if name == "Authorization" {
			h[name] = "Bearer " + secret
		} else {
			h[name] = secret
		}
	}
	return h
}

// errorCode is the code of the JSON error in body ("" if none).
func errorCode(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Errorf("the refusal is not JSON: %q", body)
	}
	return e.Error.Code
}

// checkRefused fails the test unless the answer is status with keyhub's
// error code (in JSON), WWW-Authenticate on a 401 and a Retry-After of at
// least a second on a 429, and the product received nothing.
func checkRefused(t *testing.T, p *product, before int, got answer, status int, code string) {
	t.Helper()
	if got.Status != status || errorCode(t, got.Body) != code {
		t.Fatalf("want %d %s, got %d %q", status, code, got.Status, got.Body)
	}
	if ct := got.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%d with Content-Type %q", status, ct)
	}
	if status == http.StatusUnauthorized && !strings.HasPrefix(got.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 with WWW-Authenticate %q", got.Header.Get("WWW-Authenticate"))
	}
	if status == http.StatusTooManyRequests {
		if s, err := strconv.Atoi(got.Header.Get("Retry-After")); err != nil || s < 1 {
			t.Errorf("429 with Retry-After %q", got.Header.Get("Retry-After"))
		}
	}
	if n := len(p.requests()); n != before {
		t.Errorf("a refused request reached the product")
	}
}

// TestNginxForwardAuth runs Debian's nginx with the README's server block:
// a good key and a user session reach the product with a verifiable
// identity and no credential (nor the client's Keyhub- headers); a bad
// key is 401 and a key without the scope 403, as keyhub's JSON.
func TestNginxForwardAuth(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, keyhubEnv(nil))
	p := newProduct(t, env)
	nginx := startNginx(t, keyhubAddr(env), p.addr())
	key, jwt := newKey(t, env, []string{"app:read"})
	writer, _ := newKey(t, env, []string{"app:write"})

	got := call(t, http.MethodGet, nginx+"/app/tasks?page=2", withCredential(key.Secret, "Authorization", "X-API-Key", "X-Makima-Api-Key"))
	checkAllowed(t, p, got, identity.MethodAPIKey, key.ID.String(), key.Secret, jwt)
	got = call(t, http.MethodPost, nginx+"/app/tasks", withCredential(jwt, "Authorization"))
	checkAllowed(t, p, got, identity.MethodJWT, "", key.Secret, jwt)

	before := len(p.requests())
	checkRefused(t, p, before, call(t, http.MethodGet, nginx+"/app/tasks", withCredential("mk_not_a_real_key", "X-API-Key")), http.StatusUnauthorized, "INVALID_API_KEY")
	checkRefused(t, p, before, call(t, http.MethodGet, nginx+"/app/tasks", nil), http.StatusUnauthorized, "MISSING_CREDENTIALS")
	checkRefused(t, p, before, call(t, http.MethodGet, nginx+"/app/tasks", withCredential(writer.Secret, "X-API-Key")), http.StatusForbidden, "INSUFFICIENT_SCOPE")
}

// TestNginxRateLimited: a key over its rate limit gets 429 with
// Retry-After through nginx, whose auth_request would turn keyhub's 429
// into a 500 (refuse_as=403 and the snippet's mapping carry it).
func TestNginxRateLimited(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, keyhubEnv(map[string]string{"RATE_LIMIT_TIER_RPM": "free=2"}))
	p := newProduct(t, env)
	nginx := startNginx(t, keyhubAddr(env), p.addr())
	key, _ := newKey(t, env, []string{"app:read"})
	for range 2 {
		checkAllowed(t, p, call(t, http.MethodGet, nginx+"/app/x", withCredential(key.Secret, "X-API-Key")), identity.MethodAPIKey, key.ID.String(), key.Secret)
	}
	checkRefused(t, p, len(p.requests()), call(t, http.MethodGet, nginx+"/app/x", withCredential(key.Secret, "X-API-Key")), http.StatusTooManyRequests, "RATE_LIMITED")
}

// TestNginxRevokeOnAnotherProcess: nginx asks keyhub process B; the key is
// revoked on process A (same database), and B refuses it through nginx
// within the revocation bound, although B had it cached.
func TestNginxRevokeOnAnotherProcess(t *testing.T) {
	t.Parallel()
	a := apitest.New(t, keyhubEnv(nil))
	b := a.Replica(t, nil)
	p := newProduct(t, b)
	nginx := startNginx(t, keyhubAddr(b), p.addr())
	key, jwt := newKey(t, a, []string{"app:read"})
	checkAllowed(t, p, call(t, http.MethodGet, nginx+"/app/x", withCredential(key.Secret, "X-API-Key")), identity.MethodAPIKey, key.ID.String(), key.Secret)

	a.Delete(t, "/v1/keys/"+key.ID.String(), jwt).Want(t, http.StatusOK, "")
	revoked := time.Now()
	// The README's revocation bound (CHANGE_FEED_STALE_BOUND's default):
	// the promise, not the milliseconds it usually takes.
	const bound = 5 * time.Second
	for {
		got := call(t, http.MethodGet, nginx+"/app/x", withCredential(key.Secret, "X-API-Key"))
		if got.Status == http.StatusUnauthorized {
			checkRefused(t, p, len(p.requests()), got, http.StatusUnauthorized, "KEY_REVOKED")
			t.Logf("refused through nginx %v after the revoke on the other process", time.Since(revoked).Round(time.Millisecond))
			return
		}
		if got.Status != http.StatusOK || time.Since(revoked) > bound {
			t.Fatalf("%v after the revoke, nginx answers %d %q", time.Since(revoked).Round(time.Millisecond), got.Status, got.Body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCaddyForwardAuth runs Debian's caddy with the README's site: a good
// key and a user session reach the product with a verifiable identity and
// no credential (nor the client's Keyhub- headers); keyhub's 401 and 429
// reach the client as they are, with WWW-Authenticate and Retry-After.
func TestCaddyForwardAuth(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, keyhubEnv(map[string]string{"RATE_LIMIT_TIER_RPM": "free=2"}))
	p := newProduct(t, env)
	caddy := startCaddy(t, keyhubAddr(env), p.addr())
	key, jwt := newKey(t, env, []string{"app:read"})

	got := call(t, http.MethodGet, caddy+"/app/tasks?page=2", withCredentialAnd(invented, key.Secret, "Authorization", "X-API-Key", "X-Makima-Api-Key"))
	checkAllowed(t, p, got, identity.MethodAPIKey, key.ID.String(), key.Secret, jwt)
	got = call(t, http.MethodPost, caddy+"/app/tasks", withCredentialAnd(invented, jwt, "Authorization"))
	checkAllowed(t, p, got, identity.MethodJWT, "", key.Secret, jwt)

	checkRefused(t, p, len(p.requests()), call(t, http.MethodGet, caddy+"/app/tasks", withCredential("mk_not_a_real_key", "X-API-Key")), http.StatusUnauthorized, "INVALID_API_KEY")
	checkAllowed(t, p, call(t, http.MethodGet, caddy+"/app/x", withCredential(key.Secret, "X-API-Key")), identity.MethodAPIKey, key.ID.String(), key.Secret)
	checkRefused(t, p, len(p.requests()), call(t, http.MethodGet, caddy+"/app/x", withCredential(key.Secret, "X-API-Key")), http.StatusTooManyRequests, "RATE_LIMITED")
}
