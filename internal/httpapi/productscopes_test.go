package httpapi_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// allSix is what a session holds with PRODUCT_SCOPES=app:read,app:write.
var allSix = []string{"keys:read", "keys:write", "events:read", "ws:connect", "app:read", "app:write"}

// Product scopes (PRODUCT_SCOPES) sit beside keyhub's own: a session holds
// them all, keys carry them through create, refresh and the seed API, a key
// gives only what it holds, and a name nobody configured is INVALID_SCOPE.
func TestProductScopes(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"PRODUCT_SCOPES": "app:read,app:write"})

	alice := env.Token(t, "alice@example.com")
	var me api.Me
	env.Get(t, "/v1/me", alice).Want(t, http.StatusOK, "").JSON(t, &me)
	if !slices.Equal(me.Scopes, allSix) {
		t.Fatalf("a session holds %v, want %v", me.Scopes, allSix)
	}
	// Pro tier: room for a user's second key, made by its first.
	if _, err := env.Pool.Exec(context.Background(), `UPDATE owners SET tier = 'pro' WHERE id = $1`, me.OwnerID); err != nil {
		t.Fatal(err)
	}

	// Without scopes, a key gets all of its creator's.
	var all api.CreatedKey
	env.Post(t, "/v1/keys", alice, map[string]any{"name": "all"}).Want(t, http.StatusCreated, "").JSON(t, &all)
	if !slices.Equal(all.Scopes, allSix) {
		t.Fatalf("a key created without scopes got %v", all.Scopes)
	}

	var narrow api.CreatedKey
	env.Post(t, "/v1/keys", alice, map[string]any{"name": "narrow", "scopes": []string{"app:read", "keys:write", "keys:read"}}).
		Want(t, http.StatusCreated, "").JSON(t, &narrow)
	if want := []string{"keys:read", "keys:write", "app:read"}; !slices.Equal(narrow.Scopes, want) {
		t.Fatalf("narrow key: %v, want %v", narrow.Scopes, want)
	}
	env.Get(t, "/v1/me", narrow.Secret).Want(t, http.StatusOK, "").JSON(t, &me)
	if want := []string{"keys:read", "keys:write", "app:read"}; !slices.Equal(me.Scopes, want) {
		t.Fatalf("the narrow key's /v1/me: %v", me.Scopes)
	}

	// Unknown names stay INVALID_SCOPE, whether in keyhub's namespace or not.
	for _, bad := range []string{"app:delete", "keys:admin", "APP:READ"} {
		env.Post(t, "/v1/keys", alice, map[string]any{"name": "bad", "scopes": []string{bad}}).Want(t, http.StatusBadRequest, "INVALID_SCOPE")
	}

	// A key gives only what it holds: app:write is not the narrow key's,
	// and a key it creates without scopes gets exactly its own.
	env.Post(t, "/v1/keys", narrow.Secret, map[string]any{"name": "wider", "scopes": []string{"app:write"}}).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")
	var child api.CreatedKey
	env.Post(t, "/v1/keys", narrow.Secret, map[string]any{"name": "child"}).Want(t, http.StatusCreated, "").JSON(t, &child)
	if !slices.Equal(child.Scopes, narrow.Scopes) {
		t.Fatalf("a key's child got %v, want its creator's %v", child.Scopes, narrow.Scopes)
	}
	// Nor may it refresh or revoke a key with a product scope it lacks.
	env.Post(t, "/v1/keys/"+all.ID.String()+"/refresh", narrow.Secret, nil).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")

	// A refresh keeps the product scopes.
	var refreshed api.Refreshed
	env.Post(t, "/v1/keys/"+all.ID.String()+"/refresh", alice, nil).Want(t, http.StatusCreated, "").JSON(t, &refreshed)
	if !slices.Equal(refreshed.NewKey.Scopes, allSix) {
		t.Fatalf("the refreshed key: %v", refreshed.NewKey.Scopes)
	}

	// The seed API's key gets all of its creator's scopes too.
	bob := env.Token(t, "bob@example.com")
	var seed api.SeedCreatedKey
	env.Post(t, "/api/v1/auth/api-keys", bob, map[string]any{"name": "seed"}).Want(t, http.StatusCreated, "").JSON(t, &seed)
	var seedKey api.Key
	env.Get(t, "/v1/keys/"+seed.ID.String(), bob).Want(t, http.StatusOK, "").JSON(t, &seedKey)
	if !slices.Equal(seedKey.Scopes, allSix) {
		t.Fatalf("the seed API's key: %v", seedKey.Scopes)
	}
}

// Removing a product scope from PRODUCT_SCOPES breaks no key: a process
// started without it still serves the keys that carry it (the scope simply
// stops matching), and a refresh there keeps the stored name, so it matches
// again wherever the scope is configured.
func TestRemovedProductScopeStopsMatching(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"PRODUCT_SCOPES": "app:read,app:write"})
	alice := env.Token(t, "alice@example.com")
	var key api.CreatedKey
	env.Post(t, "/v1/keys", alice, map[string]any{"name": "k", "scopes": []string{"keys:read", "keys:write", "app:read", "app:write"}}).
		Want(t, http.StatusCreated, "").JSON(t, &key)

	// Reordered and shrunk: app:write is gone, billing:read is new.
	without := env.Replica(t, map[string]string{"PRODUCT_SCOPES": "billing:read,app:read"})
	var me api.Me
	without.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, "").JSON(t, &me)
	if want := []string{"keys:read", "keys:write", "app:read"}; !slices.Equal(me.Scopes, want) {
		t.Fatalf("on the process without app:write the key holds %v, want %v", me.Scopes, want)
	}
	var list api.KeyList
	without.Get(t, "/v1/keys", key.Secret).Want(t, http.StatusOK, "").JSON(t, &list)
	if len(list.Data) != 1 || !slices.Equal(list.Data[0].Scopes, []string{"keys:read", "keys:write", "app:read"}) {
		t.Fatalf("listed there: %+v", list.Data)
	}
	// The removed scope is unknown there: asking for it is INVALID_SCOPE.
	without.Post(t, "/v1/keys", alice, map[string]any{"name": "x", "scopes": []string{"app:write"}}).Want(t, http.StatusBadRequest, "INVALID_SCOPE")

	var refreshed api.Refreshed
	without.Post(t, "/v1/keys/"+key.ID.String()+"/refresh", key.Secret, nil).Want(t, http.StatusCreated, "").JSON(t, &refreshed)
	env.Get(t, "/v1/me", refreshed.NewKey.Secret).Want(t, http.StatusOK, "").JSON(t, &me)
	if want := []string{"keys:read", "keys:write", "app:read", "app:write"}; !slices.Equal(me.Scopes, want) {
		t.Fatalf("the replacement, back where app:write is configured: %v, want %v", me.Scopes, want)
	}
}
