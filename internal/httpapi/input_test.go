package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// TestNullBodyIsInvalidJSON: a body of null is not an object. Decoded into
// a struct it is a silent no-op, so before it was refused the seed refresh
// rotated a key on it and the v1 refresh took it for "no options".
func TestNullBodyIsInvalidJSON(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, nil)
	jwt := env.Token(t, "null@example.com")
	var created api.SeedCreatedKey
	env.Post(t, "/api/v1/auth/api-keys", jwt, nil).Want(t, http.StatusCreated, "").JSON(t, &created)

	for _, path := range []string{
		"/v1/keys",
		"/v1/keys/" + created.ID.String() + "/refresh",
		"/api/v1/auth/api-keys",
		"/api/v1/auth/api-keys/refresh",
		"/dev/token",
	} {
		for _, body := range []string{"null", " null\n"} {
			env.Post(t, path, jwt, body).Want(t, http.StatusBadRequest, "INVALID_JSON")
		}
	}
	// Nothing was rotated: the key made above is still the caller's.
	var current api.SeedKeyInfo
	env.Get(t, "/api/v1/auth/api-keys", jwt).Want(t, http.StatusOK, "").JSON(t, &current)
	if current.ID != created.ID {
		t.Errorf("the active key is %s, not %s: a null body rotated it", current.ID, created.ID)
	}
}

// TestEmptyQueryValuesAreRefused: ?limit= is not an integer from 1 to 200
// and ?since= is not a time; an empty value is refused like any other bad
// one instead of meaning "absent".
func TestEmptyQueryValuesAreRefused(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "empty@example.com")
	var created api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "q"}).Want(t, http.StatusCreated, "").JSON(t, &created)
	keyEvents := "/v1/keys/" + created.ID.String() + "/events"

	for _, path := range []string{
		"/v1/keys?limit=",
		"/v1/keys?status=",
		"/v1/keys?status=active&limit=",
		"/v1/events?limit=",
		"/v1/events?since=",
		"/v1/events?until=",
		keyEvents + "?since=",
		keyEvents + "?until=",
		keyEvents + "?limit=",
	} {
		env.Get(t, path, jwt).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	}
	// Absent is still the default.
	for _, path := range []string{"/v1/keys", "/v1/events", keyEvents} {
		env.Get(t, path, jwt).Want(t, http.StatusOK, "")
	}
}

// TestUserAgentOfAnyBytes: a User-Agent that is not UTF-8 is stored as
// displayable text; the write it comes with succeeds (it answered 500).
func TestUserAgentOfAnyBytes(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "ua@example.com")
	ua := map[string]string{"User-Agent": "curl/8\xff\xfe"}
	var created api.CreatedKey
	env.Do(t, apitest.Request{Method: http.MethodPost, Path: "/v1/keys", Cred: jwt, Body: map[string]any{"name": "ua"}, Headers: ua}).
		Want(t, http.StatusCreated, "").JSON(t, &created)
	var refreshed api.Refreshed
	env.Do(t, apitest.Request{Method: http.MethodPost, Path: "/v1/keys/" + created.ID.String() + "/refresh", Cred: jwt, Headers: ua}).
		Want(t, http.StatusCreated, "").JSON(t, &refreshed)
	env.Do(t, apitest.Request{Method: http.MethodDelete, Path: "/v1/keys/" + refreshed.NewKey.ID.String(), Cred: jwt, Headers: ua}).
		Want(t, http.StatusOK, "")
	var events api.EventList
	env.Get(t, "/v1/events", jwt).Want(t, http.StatusOK, "").JSON(t, &events)
	for _, e := range events.Data {
		// A run of invalid bytes becomes one replacement character.
		if e.UserAgent == nil || *e.UserAgent != "curl/8\uFFFD" {
			t.Errorf("%s event: user agent %q", e.Type, deref(e.UserAgent))
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<null>"
	}
	return *s
}

// TestKeyNamesRefuseC1AndBidi: every path that takes a name refuses C1
// control characters and the bidirectional overrides and isolates that
// make "evil\u202egnp.exe" display as "evilexe.png".
func TestKeyNamesRefuseC1AndBidi(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "names@example.com")
	var created api.SeedCreatedKey
	env.Post(t, "/api/v1/auth/api-keys", jwt, map[string]any{"name": "fine"}).Want(t, http.StatusCreated, "").JSON(t, &created)
	refresh := "/v1/keys/" + created.ID.String() + "/refresh"
	for _, name := range []string{"c1\u0085", "csi\u009b31m", "evil\u202egnp.exe", "\u202aembed", "pop\u202c", "iso\u2066x\u2069", "fsi\u2068"} {
		env.Post(t, "/v1/keys", jwt, map[string]any{"name": name}).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
		env.Post(t, refresh, jwt, map[string]any{"name": name}).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
		env.Post(t, "/api/v1/auth/api-keys", jwt, map[string]any{"name": name}).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
		env.Post(t, "/api/v1/auth/api-keys/refresh", jwt, map[string]any{"name": name}).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	}
	// Nothing was rotated on the way.
	var current api.SeedKeyInfo
	env.Get(t, "/api/v1/auth/api-keys", jwt).Want(t, http.StatusOK, "").JSON(t, &current)
	if current.ID != created.ID || current.Name != "fine" {
		t.Errorf("the active key is %+v, not the one created", current)
	}
}
