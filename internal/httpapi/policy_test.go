package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// The owner's policy is the tenant's: a dashboard user reads and changes
// it, a key is refused; leak_policy is stored, validated and returned, and
// max_key_lifetime null removes the bound.
func TestOwnerPolicy(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{})
	jwt := env.Token(t, "policy@example.com")
	var policy api.OwnerPolicy
	env.Get(t, "/v1/owner/policy", jwt).Want(t, http.StatusOK, "").JSON(t, &policy)
	if policy.LeakPolicy != "revoke" || policy.MaxKeyLifetime != nil {
		t.Fatalf("default policy %+v, want revoke and no bound", policy)
	}

	patch := func(cred string, body any) apitest.Response {
		return env.Do(t, apitest.Request{Method: http.MethodPatch, Path: "/v1/owner/policy", Cred: cred, Body: body})
	}
	patch(jwt, map[string]any{"leak_policy": "notify", "max_key_lifetime": 3600}).Want(t, http.StatusOK, "").JSON(t, &policy)
	if policy.LeakPolicy != "notify" || policy.MaxKeyLifetime == nil || *policy.MaxKeyLifetime != 3600 {
		t.Fatalf("after patch: %+v", policy)
	}
	// A field left out stays; null removes the bound.
	patch(jwt, map[string]any{"max_key_lifetime": nil}).Want(t, http.StatusOK, "").JSON(t, &policy)
	if policy.LeakPolicy != "notify" || policy.MaxKeyLifetime != nil {
		t.Fatalf("after null: %+v", policy)
	}
	env.Get(t, "/v1/owner/policy", jwt).Want(t, http.StatusOK, "").JSON(t, &policy)
	if policy.LeakPolicy != "notify" || policy.MaxKeyLifetime != nil {
		t.Fatalf("read back: %+v", policy)
	}

	for _, bad := range []any{
		map[string]any{"leak_policy": "ignore"},
		map[string]any{"leak_policy": ""},
		map[string]any{"max_key_lifetime": 59},
		map[string]any{"max_key_lifetime": 0},
		map[string]any{"max_key_lifetime": int64(10*365*24*3600) + 1},
	} {
		patch(jwt, bad).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	}
	patch(jwt, map[string]any{"leak_policy": nil}).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	patch(jwt, map[string]any{"max_key_lifetime": "1h"}).Want(t, http.StatusBadRequest, "INVALID_JSON")
	patch(jwt, map[string]any{"other": 1}).Want(t, http.StatusBadRequest, "INVALID_JSON")

	// A key, even with every scope, may not read or change it.
	var key api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "cli"}).Want(t, http.StatusCreated, "").JSON(t, &key)
	env.Get(t, "/v1/owner/policy", key.Secret).Want(t, http.StatusForbidden, "USER_SESSION_REQUIRED")
	patch(key.Secret, map[string]any{"leak_policy": "revoke"}).Want(t, http.StatusForbidden, "USER_SESSION_REQUIRED")
	env.Get(t, "/v1/owner/policy", "").Want(t, http.StatusUnauthorized, "MISSING_CREDENTIALS")

	// Another owner's policy is its own.
	other := env.Token(t, "policy-other@example.com")
	env.Get(t, "/v1/owner/policy", other).Want(t, http.StatusOK, "").JSON(t, &policy)
	if policy.LeakPolicy != "revoke" {
		t.Fatalf("another owner sees %+v", policy)
	}
}

// A bound shorter than the server's KEY_MIN_LIFETIME is refused: every
// create with an expiry would be refused, and one without would get a key
// shorter than the server allows.
func TestPolicyLifetimeNotBelowServerMinimum(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"KEY_MIN_LIFETIME": "1h"})
	jwt := env.Token(t, "policy-min@example.com")
	patch := func(body any) apitest.Response {
		return env.Do(t, apitest.Request{Method: http.MethodPatch, Path: "/v1/owner/policy", Cred: jwt, Body: body})
	}
	patch(map[string]any{"max_key_lifetime": 3599}).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	patch(map[string]any{"max_key_lifetime": 3600}).Want(t, http.StatusOK, "")
}

// max_key_lifetime: a create without an expiry gets the longest allowed,
// one beyond it is refused (400 KEY_LIFETIME_EXCEEDS_POLICY), a refresh
// shortens the replacement's lifetime to it, and lowering it leaves the
// keys that exist as they are.
func TestMaxKeyLifetime(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{})
	jwt := env.Token(t, "lifetime@example.com")
	var forever api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "forever"}).Want(t, http.StatusCreated, "").JSON(t, &forever)
	if forever.ExpiresAt != nil {
		t.Fatalf("no policy, yet expires %v", forever.ExpiresAt)
	}
	env.Do(t, apitest.Request{Method: http.MethodPatch, Path: "/v1/owner/policy", Cred: jwt, Body: map[string]any{"max_key_lifetime": 3600}}).Want(t, http.StatusOK, "")
	// Lowering the bound does not shorten the key that exists.
	var got api.Key
	env.Get(t, "/v1/keys/"+forever.ID.String(), jwt).Want(t, http.StatusOK, "").JSON(t, &got)
	if got.ExpiresAt != nil || got.Status != "active" {
		t.Fatalf("an existing key changed: %+v", got)
	}
	// The tier allows one key: revoke it to make room.
	env.Delete(t, "/v1/keys/"+forever.ID.String(), jwt).Want(t, http.StatusOK, "")

	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "long", "expires_in": 3601 + 60}).Want(t, http.StatusBadRequest, "KEY_LIFETIME_EXCEEDS_POLICY")
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "long", "expires_at": time.Now().Add(2 * time.Hour)}).Want(t, http.StatusBadRequest, "KEY_LIFETIME_EXCEEDS_POLICY")
	var filled api.CreatedKey
	before := time.Now()
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "filled"}).Want(t, http.StatusCreated, "").JSON(t, &filled)
	if filled.ExpiresAt == nil || filled.ExpiresAt.Before(before.Add(time.Hour-time.Minute)) || filled.ExpiresAt.After(time.Now().Add(time.Hour)) {
		t.Fatalf("a create without expiry under a 1 h policy expires %v", filled.ExpiresAt)
	}
	env.Delete(t, "/v1/keys/"+filled.ID.String(), jwt).Want(t, http.StatusOK, "")
	var short api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "short", "expires_in": 600}).Want(t, http.StatusCreated, "").JSON(t, &short)

	// A refresh keeps the lifetime (10 min), within the bound; once the
	// bound is below it, the replacement gets the bound.
	env.Do(t, apitest.Request{Method: http.MethodPatch, Path: "/v1/owner/policy", Cred: jwt, Body: map[string]any{"max_key_lifetime": 120}}).Want(t, http.StatusOK, "")
	var refreshed api.Refreshed
	env.Post(t, "/v1/keys/"+short.ID.String()+"/refresh", jwt, nil).Want(t, http.StatusCreated, "").JSON(t, &refreshed)
	exp := refreshed.NewKey.ExpiresAt
	if exp == nil || exp.After(time.Now().Add(2*time.Minute)) || exp.Before(time.Now().Add(time.Minute)) {
		t.Fatalf("the replacement under a 2 min policy expires %v", exp)
	}
}
