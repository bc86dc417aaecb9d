package httpapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// The whole life of a key through real HTTP: create with a JWT, use it,
// refresh it (old refused, new works), revoke it, read the audit trail.
func TestKeyLifecycleEndToEnd(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "alice@example.com")
	ua := map[string]string{"User-Agent": "keyhub-e2e/1.0"}

	var created api.CreatedKey
	env.Do(t, apitest.Request{Method: http.MethodPost, Path: "/v1/keys", Cred: jwt, Body: map[string]any{"name": "  laptop  "}, Headers: ua}).
		Want(t, http.StatusCreated, "").JSON(t, &created)
	if created.Name != "laptop" || created.Status != "active" || len(created.Secret) != 46 || created.Prefix != created.Secret[:11] {
		t.Fatalf("created: %+v", created)
	}

	var me api.Me
	env.Get(t, "/v1/me", created.Secret).Want(t, http.StatusOK, "").JSON(t, &me)
	if me.AuthMethod != "api_key" || me.KeyPrefix != created.Prefix || me.Email != "alice@example.com" || me.Tier != "free" {
		t.Fatalf("me with key: %+v", me)
	}
	// The same key in X-API-Key and the seed's header works too.
	for _, h := range []string{"X-API-Key", "X-Makima-Api-Key"} {
		env.Do(t, apitest.Request{Method: http.MethodGet, Path: "/v1/me", Headers: map[string]string{h: created.Secret}}).Want(t, http.StatusOK, "")
	}

	var refreshed api.Refreshed
	env.Do(t, apitest.Request{Method: http.MethodPost, Path: "/v1/keys/" + created.ID.String() + "/refresh", Cred: jwt, Headers: ua}).
		Want(t, http.StatusCreated, "").JSON(t, &refreshed)
	if refreshed.OldKey.Status != "revoked" || refreshed.OldKey.ReplacedBy == nil || *refreshed.OldKey.ReplacedBy != refreshed.NewKey.ID {
		t.Fatalf("refresh: %+v", refreshed)
	}
	env.Get(t, "/v1/me", created.Secret).Want(t, http.StatusUnauthorized, "KEY_REVOKED")
	env.Get(t, "/v1/me", refreshed.NewKey.Secret).Want(t, http.StatusOK, "")

	env.Do(t, apitest.Request{Method: http.MethodDelete, Path: "/v1/keys/" + refreshed.NewKey.ID.String(), Cred: jwt, Headers: ua}).
		Want(t, http.StatusOK, "")
	env.Get(t, "/v1/me", refreshed.NewKey.Secret).Want(t, http.StatusUnauthorized, "KEY_REVOKED")

	var events api.EventList
	env.Get(t, "/v1/events", jwt).Want(t, http.StatusOK, "").JSON(t, &events)
	want := []struct {
		typ string
		key string
	}{
		{"revoked", refreshed.NewKey.ID.String()},
		{"created", refreshed.NewKey.ID.String()},
		{"refreshed", created.ID.String()},
		{"created", created.ID.String()},
	}
	if len(events.Data) != len(want) {
		t.Fatalf("want %d events, got %d: %+v", len(want), len(events.Data), events.Data)
	}
	for i, w := range want {
		e := events.Data[i]
		if e.Type != w.typ || e.KeyID.String() != w.key {
			t.Errorf("event %d: want %s of %s, got %s of %s", i, w.typ, w.key, e.Type, e.KeyID)
		}
		if e.IPAddress == nil || *e.IPAddress != "127.0.0.1" || e.UserAgent == nil || *e.UserAgent != "keyhub-e2e/1.0" || e.ActorUserID == nil || *e.ActorUserID != me.UserID {
			t.Errorf("event %d lacks who/where: %+v", i, e)
		}
	}
	var keyEvents api.EventList
	env.Get(t, "/v1/keys/"+created.ID.String()+"/events", jwt).Want(t, http.StatusOK, "").JSON(t, &keyEvents)
	if len(keyEvents.Data) != 2 {
		t.Fatalf("events of the first key: %+v", keyEvents.Data)
	}
}

func TestRevokeIsIdempotent(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "bob@example.com")
	var k api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "k"}).Want(t, http.StatusCreated, "").JSON(t, &k)
	var first, second api.RevokedKey
	env.Delete(t, "/v1/keys/"+k.ID.String(), jwt).Want(t, http.StatusOK, "").JSON(t, &first)
	env.Delete(t, "/v1/keys/"+k.ID.String(), jwt).Want(t, http.StatusOK, "").JSON(t, &second)
	if first.AlreadyRevoked || !second.AlreadyRevoked || second.RevokedAt == nil || !second.RevokedAt.Equal(*first.RevokedAt) {
		t.Fatalf("first %+v second %+v", first, second)
	}
	var n int
	if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM api_key_events WHERE event_type = 'revoked'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("revoked events: %d %v", n, err)
	}
}

func TestRefreshWithGraceKeepsOldKeyUntilExpiry(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "carol@example.com")
	var k api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "k"}).Want(t, http.StatusCreated, "").JSON(t, &k)
	env.Get(t, "/v1/me", k.Secret).Want(t, http.StatusOK, "") // now cached
	var r api.Refreshed
	env.Post(t, "/v1/keys/"+k.ID.String()+"/refresh", jwt, map[string]any{"grace_period": 3600, "name": "rotated"}).
		Want(t, http.StatusCreated, "").JSON(t, &r)
	if r.OldKey.Status != "active" || r.OldKey.ExpiresAt == nil || r.NewKey.Name != "rotated" {
		t.Fatalf("grace refresh: %+v", r)
	}
	var me api.Me
	env.Get(t, "/v1/me", k.Secret).Want(t, http.StatusOK, "").JSON(t, &me)
	if me.ExpiresAt == nil || !me.ExpiresAt.Equal(*r.OldKey.ExpiresAt) {
		t.Fatalf("cached principal did not learn the new expiry: %+v", me)
	}
	env.Get(t, "/v1/me", r.NewKey.Secret).Want(t, http.StatusOK, "")
	env.Post(t, "/v1/keys/"+k.ID.String()+"/refresh", jwt, nil).Want(t, http.StatusConflict, "KEY_ALREADY_REFRESHED")
	env.Post(t, "/v1/keys/"+k.ID.String()+"/refresh", jwt, map[string]any{"grace_period": 86401}).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
}
