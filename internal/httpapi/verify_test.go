package httpapi_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/apitest"
)

const (
	verifyToken = "verify-token-0123456789abcdefghijklmnop"
	jwtSecret   = "project-jwt-secret-0123456789abcdefghijkl"
)

func verifyEnv(t *testing.T, env map[string]string) *apitest.Env {
	t.Helper()
	vars := map[string]string{"PRODUCT_SCOPES": "app:read,app:write", "VERIFY_TOKENS": verifyToken, "SUPABASE_JWT_SECRET": jwtSecret}
	for k, v := range env {
		vars[k] = v
	}
	return apitest.New(t, vars)
}

// verify asks as operator cred and returns the 200 answer's raw JSON.
func verify(t *testing.T, env *apitest.Env, cred string, body map[string]any) map[string]any {
	t.Helper()
	var out map[string]any
	res := env.Post(t, "/v1/keys/verify", cred, body).Want(t, http.StatusOK, "")
	if err := json.Unmarshal(res.Body, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// wantRefused checks an invalid key's answer says why and nothing else.
func wantRefused(t *testing.T, got map[string]any, code string) {
	t.Helper()
	if len(got) != 2 || got["valid"] != false || got["code"] != code {
		t.Fatalf("want {valid:false, code:%s} alone, got %v", code, got)
	}
}

func TestVerifyKey(t *testing.T) {
	t.Parallel()
	env := verifyEnv(t, nil)
	alice := env.Token(t, "alice@example.com")
	var key api.CreatedKey
	env.Post(t, "/v1/keys", alice, map[string]any{"name": "prod", "scopes": []string{"keys:read", "app:read"}, "expires_in": 3600}).
		Want(t, http.StatusCreated, "").JSON(t, &key)

	var me api.Me
	env.Get(t, "/v1/me", alice).Want(t, http.StatusOK, "").JSON(t, &me)

	got := verify(t, env, verifyToken, map[string]any{"key": key.Secret, "scope": "app:read"})
	// Exactly the documented fields, no more.
	if fields := slices.Sorted(maps.Keys(got)); !slices.Equal(fields, []string{"code", "expires_at", "key_id", "name", "owner_id", "ratelimit", "scopes", "tier", "user_id", "valid"}) {
		t.Fatalf("valid answer's fields: %v", fields)
	}
	if rl, _ := got["ratelimit"].(map[string]any); !slices.Equal(slices.Sorted(maps.Keys(rl)), []string{"limit", "remaining", "reset_seconds"}) {
		t.Fatalf("ratelimit's fields: %v", got["ratelimit"])
	}
	var v api.KeyVerification
	raw, _ := json.Marshal(got)
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if !v.Valid || v.Code != "VALID" || v.KeyID != key.ID || v.UserID != key.UserID || v.OwnerID != me.OwnerID || v.Name != "prod" || v.Tier != "free" ||
		!slices.Equal(v.Scopes, []string{"keys:read", "app:read"}) || v.ExpiresAt == nil || !v.ExpiresAt.Equal(*key.ExpiresAt) ||
		v.RateLimit == nil || v.RateLimit.Limit != 60 || v.RateLimit.Remaining >= 60 {
		t.Fatalf("valid answer: %s", raw)
	}

	// The Supabase service_role key, as Supabase issues it, is an operator too.
	serviceRole, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "supabase", "ref": "abcd", "role": "service_role",
		"iat": time.Now().Unix(), "exp": time.Now().Add(24 * time.Hour).Unix()}).SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	if got := verify(t, env, serviceRole, map[string]any{"key": key.Secret}); got["valid"] != true {
		t.Fatalf("with the service_role key: %v", got)
	}

	wantRefused(t, verify(t, env, verifyToken, map[string]any{"key": key.Secret, "scope": "app:write"}), "INSUFFICIENT_SCOPE")
	wantRefused(t, verify(t, env, verifyToken, map[string]any{"key": "mk_typo"}), "INVALID_API_KEY")
	unknown, _ := apikey.Generate()
	wantRefused(t, verify(t, env, verifyToken, map[string]any{"key": unknown}), "INVALID_API_KEY")
	wantRefused(t, verify(t, env, verifyToken, map[string]any{"key": alice}), "INVALID_API_KEY") // a JWT is no key

	// An expired key (never seen before, so read from the database).
	bob := env.Token(t, "bob@example.com")
	var old api.CreatedKey
	env.Post(t, "/v1/keys", bob, map[string]any{"name": "old"}).Want(t, http.StatusCreated, "").JSON(t, &old)
	if _, err := env.Pool.Exec(context.Background(), `UPDATE api_keys SET created_at = now() - interval '1 hour', expires_at = now() - interval '1 second' WHERE id = $1`, old.ID); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, verify(t, env, verifyToken, map[string]any{"key": old.Secret}), "KEY_EXPIRED")

	env.Delete(t, "/v1/keys/"+key.ID.String(), alice).Want(t, http.StatusOK, "")
	wantRefused(t, verify(t, env, verifyToken, map[string]any{"key": key.Secret}), "KEY_REVOKED")

	// Malformed questions are not verdicts.
	env.Post(t, "/v1/keys/verify", verifyToken, map[string]any{"key": key.Secret, "scope": "app:delete"}).Want(t, http.StatusBadRequest, "INVALID_SCOPE")
	env.Post(t, "/v1/keys/verify", verifyToken, map[string]any{"scope": "app:read"}).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	env.Post(t, "/v1/keys/verify", verifyToken, map[string]any{"key": key.Secret, "extra": 1}).Want(t, http.StatusBadRequest, "INVALID_JSON")
}

// A key restricted to networks is valid only from inside them, judged on
// the client_ip the backend passes; without client_ip keyhub cannot know
// where the key is used from and refuses it. A key without networks needs
// none. The operator's own address (127.0.0.1 here, inside the networks)
// is never what is judged.
func TestVerifyKeyJudgesTheCustomersAddress(t *testing.T) {
	t.Parallel()
	env := verifyEnv(t, nil)
	alice := env.Token(t, "alice@example.com")
	var me api.Me
	env.Get(t, "/v1/me", alice).Want(t, http.StatusOK, "").JSON(t, &me)
	if _, err := env.Pool.Exec(context.Background(), "UPDATE owners SET tier = 'pro' WHERE id = $1", me.OwnerID); err != nil {
		t.Fatal(err)
	}
	var pinned, open api.CreatedKey
	env.Post(t, "/v1/keys", alice, map[string]any{"name": "pinned", "allowed_cidrs": []string{"203.0.113.0/24", "127.0.0.0/8", "2001:db8::/32"}}).
		Want(t, http.StatusCreated, "").JSON(t, &pinned)
	env.Post(t, "/v1/keys", alice, map[string]any{"name": "open"}).Want(t, http.StatusCreated, "").JSON(t, &open)
	for _, ip := range []string{"203.0.113.7", "2001:db8::1", "::ffff:203.0.113.9"} {
		if got := verify(t, env, verifyToken, map[string]any{"key": pinned.Secret, "client_ip": ip}); got["valid"] != true {
			t.Fatalf("pinned key from %s: %v", ip, got)
		}
	}
	wantRefused(t, verify(t, env, verifyToken, map[string]any{"key": pinned.Secret, "client_ip": "198.51.100.1"}), "IP_NOT_ALLOWED")
	wantRefused(t, verify(t, env, verifyToken, map[string]any{"key": pinned.Secret}), "IP_NOT_ALLOWED")
	if got := verify(t, env, verifyToken, map[string]any{"key": open.Secret}); got["valid"] != true {
		t.Fatalf("a key without networks, no client_ip: %v", got)
	}
	for _, bad := range []any{"203.0.113.0/24", "localhost", "", "fe80::1%eth0", 7} {
		r := env.Post(t, "/v1/keys/verify", verifyToken, map[string]any{"key": pinned.Secret, "client_ip": bad})
		if r.Status != http.StatusBadRequest {
			t.Fatalf("client_ip %v: %d %s", bad, r.Status, r.Body)
		}
	}
}

// Only operators verify: a tenant's session or key is 403, a missing or
// wrong credential 401.
func TestVerifyKeyNeedsAnOperator(t *testing.T) {
	t.Parallel()
	env := verifyEnv(t, nil)
	alice := env.Token(t, "alice@example.com")
	var key api.CreatedKey
	env.Post(t, "/v1/keys", alice, map[string]any{"name": "k"}).Want(t, http.StatusCreated, "").JSON(t, &key)
	body := map[string]any{"key": key.Secret}

	env.Post(t, "/v1/keys/verify", alice, body).Want(t, http.StatusForbidden, "OPERATOR_CREDENTIAL_REQUIRED")
	env.Post(t, "/v1/keys/verify", key.Secret, body).Want(t, http.StatusForbidden, "OPERATOR_CREDENTIAL_REQUIRED")
	env.Do(t, apitest.Request{Method: http.MethodPost, Path: "/v1/keys/verify", Body: body, Headers: map[string]string{"X-API-Key": key.Secret}}).
		Want(t, http.StatusForbidden, "OPERATOR_CREDENTIAL_REQUIRED")
	env.Post(t, "/v1/keys/verify", "", body).Want(t, http.StatusUnauthorized, "MISSING_CREDENTIALS")
	env.Post(t, "/v1/keys/verify", strings.Repeat("x", 40), body).Want(t, http.StatusUnauthorized, "INVALID_TOKEN")
	// The anon key is signed by the project too, and is no operator.
	anon, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "supabase", "role": "anon",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(jwtSecret))
	env.Post(t, "/v1/keys/verify", anon, body).Want(t, http.StatusUnauthorized, "NOT_A_USER_SESSION")
}

// A verification spends the key's bucket, like a request made with it.
func TestVerifyKeySpendsTheKeysBucket(t *testing.T) {
	t.Parallel()
	env := verifyEnv(t, map[string]string{"RATE_LIMIT_TIER_RPM": "free=3"})
	alice := env.Token(t, "alice@example.com")
	var key api.CreatedKey
	env.Post(t, "/v1/keys", alice, map[string]any{"name": "k"}).Want(t, http.StatusCreated, "").JSON(t, &key)
	for want := 2; want >= 0; want-- {
		got := verify(t, env, verifyToken, map[string]any{"key": key.Secret})
		if rl, _ := got["ratelimit"].(map[string]any); got["valid"] != true || rl["remaining"] != float64(want) || rl["limit"] != float64(3) {
			t.Fatalf("want %d remaining: %v", want, got)
		}
	}
	wantRefused(t, verify(t, env, verifyToken, map[string]any{"key": key.Secret}), "RATE_LIMITED")
	env.Get(t, "/v1/me", key.Secret).Want(t, http.StatusTooManyRequests, "RATE_LIMITED")
}

// A key keyhub has cached is verified with the database away; one it has
// not is 503, never a verdict.
func TestVerifyCachedKeyWithoutTheDatabase(t *testing.T) {
	t.Parallel()
	env, proxy := apitest.NewBehindProxy(t, map[string]string{"VERIFY_TOKENS": verifyToken})
	alice := env.Token(t, "alice@example.com")
	var key api.CreatedKey
	env.Post(t, "/v1/keys", alice, map[string]any{"name": "cached"}).Want(t, http.StatusCreated, "").JSON(t, &key)
	if got := verify(t, env, verifyToken, map[string]any{"key": key.Secret}); got["valid"] != true {
		t.Fatalf("%v", got)
	}
	proxy.Block()
	defer proxy.Unblock()
	if got := verify(t, env, verifyToken, map[string]any{"key": key.Secret}); got["valid"] != true {
		t.Fatalf("a cached key with the database away: %v", got)
	}
	unknown, _ := apikey.Generate()
	env.Post(t, "/v1/keys/verify", verifyToken, map[string]any{"key": unknown}).Want(t, http.StatusServiceUnavailable, "UNAVAILABLE")
}

// The operator's address answers for its own credential, never for its
// customers' keys: however many mistyped keys it asks about, it is not
// blocked; a wrong operator secret is a failed authentication like any.
func TestVerifyKeyFailuresCountAgainstTheOperatorOnlyForItsOwnCredential(t *testing.T) {
	t.Parallel()
	env := verifyEnv(t, map[string]string{"AUTH_FAILURE_RATE_LIMIT": "2", "AUTH_FAILURE_BURST": "2"})
	alice := env.Token(t, "alice@example.com")
	var key api.CreatedKey
	env.Post(t, "/v1/keys", alice, map[string]any{"name": "k"}).Want(t, http.StatusCreated, "").JSON(t, &key)
	for range 5 {
		unknown, _ := apikey.Generate()
		wantRefused(t, verify(t, env, verifyToken, map[string]any{"key": unknown}), "INVALID_API_KEY")
	}
	if got := verify(t, env, verifyToken, map[string]any{"key": key.Secret}); got["valid"] != true {
		t.Fatalf("after customers' typos: %v", got)
	}

	wrong := strings.Repeat("w", 40)
	for range 2 {
		env.Post(t, "/v1/keys/verify", wrong, map[string]any{"key": key.Secret}).Want(t, http.StatusUnauthorized, "INVALID_TOKEN")
	}
	env.Post(t, "/v1/keys/verify", wrong, map[string]any{"key": key.Secret}).Want(t, http.StatusTooManyRequests, "RATE_LIMITED")
	// Blocked before its credential is looked at: the right secret too.
	res := env.Post(t, "/v1/keys/verify", verifyToken, map[string]any{"key": key.Secret}).Want(t, http.StatusTooManyRequests, "RATE_LIMITED")
	if res.Header.Get("Retry-After") == "" {
		t.Fatal("a refused operator gets no Retry-After")
	}
}

// On a server without user sign-in (VERIFY_TOKENS only), a wrong operator
// secret is a failed authentication like any, never the 503 of a missing
// configuration.
func TestVerifyKeyWithoutUserSignIn(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"VERIFY_TOKENS": verifyToken, "SUPABASE_JWKS_URL": "", "JWT_ISSUER": "",
		"AUTH_FAILURE_RATE_LIMIT": "2", "AUTH_FAILURE_BURST": "2"})
	unknown, _ := apikey.Generate()
	wantRefused(t, verify(t, env, verifyToken, map[string]any{"key": unknown}), "INVALID_API_KEY")
	wrong := strings.Repeat("w", 40)
	for range 2 {
		env.Post(t, "/v1/keys/verify", wrong, map[string]any{"key": unknown}).Want(t, http.StatusUnauthorized, "INVALID_TOKEN")
	}
	env.Post(t, "/v1/keys/verify", wrong, map[string]any{"key": unknown}).Want(t, http.StatusTooManyRequests, "RATE_LIMITED")
}
