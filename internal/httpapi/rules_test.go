package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// Another tenant's key id answers exactly like a missing one, on every
// endpoint that takes one.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	alice, mallory := env.Token(t, "alice@example.com"), env.Token(t, "mallory@example.com")
	var k api.CreatedKey
	env.Post(t, "/v1/keys", alice, map[string]any{"name": "alice's"}).Want(t, http.StatusCreated, "").JSON(t, &k)
	missing := "00000000-0000-4000-8000-000000000000"
	for _, id := range []string{k.ID.String(), missing} {
		env.Get(t, "/v1/keys/"+id, mallory).Want(t, http.StatusNotFound, "NOT_FOUND")
		env.Delete(t, "/v1/keys/"+id, mallory).Want(t, http.StatusNotFound, "NOT_FOUND")
		env.Post(t, "/v1/keys/"+id+"/refresh", mallory, nil).Want(t, http.StatusNotFound, "NOT_FOUND")
		env.Get(t, "/v1/keys/"+id+"/events", mallory).Want(t, http.StatusNotFound, "NOT_FOUND")
	}
	var list api.KeyList
	env.Get(t, "/v1/keys", mallory).Want(t, http.StatusOK, "").JSON(t, &list)
	var events api.EventList
	env.Get(t, "/v1/events", mallory).Want(t, http.StatusOK, "").JSON(t, &events)
	if len(list.Data) != 0 || len(events.Data) != 0 {
		t.Fatalf("mallory sees alice's data: %+v %+v", list, events)
	}
	env.Get(t, "/api/v1/auth/api-keys", mallory).Want(t, http.StatusNotFound, "NOT_FOUND")
	// Alice's key still works and is still active.
	env.Get(t, "/v1/keys/"+k.ID.String(), k.Secret).Want(t, http.StatusOK, "")
}

// 20 concurrent creates by one free user yield exactly one key.
func TestTierLimitIsRaceFree(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"KEY_CREATE_BURST": "100"}) // 20 creates at once: the tier's limit is under test, not the creation budget
	jwt := env.Token(t, "free@example.com")
	env.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "") // provision first
	statuses := make([]int, 20)
	codes := make([]string, 20)
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := env.Post(t, "/v1/keys", jwt, map[string]any{"name": "k"})
			statuses[i], codes[i] = r.Status, r.ErrorCode()
		}()
	}
	wg.Wait()
	created := 0
	for i, s := range statuses {
		switch {
		case s == http.StatusCreated:
			created++
		case s != http.StatusConflict || codes[i] != "KEY_LIMIT_REACHED":
			t.Errorf("attempt %d: %d %s", i, s, codes[i])
		}
	}
	var n int
	if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM api_keys").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if created != 1 || n != 1 {
		t.Fatalf("want exactly 1 key, got %d created, %d rows", created, n)
	}
	// A pro owner gets five.
	if _, err := env.Pool.Exec(context.Background(), "UPDATE owners SET tier = 'pro'"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		env.Post(t, "/v1/keys", jwt, map[string]any{"name": "k"}).Want(t, http.StatusCreated, "")
	}
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "k"}).Want(t, http.StatusConflict, "KEY_LIMIT_REACHED")
}

// Two concurrent refreshes of one key: one replacement, one conflict.
func TestConcurrentRefresh(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "rot@example.com")
	var k api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "k"}).Want(t, http.StatusCreated, "").JSON(t, &k)
	for round := 0; round < 5; round++ {
		results := make([]apitest.Response, 2)
		var wg sync.WaitGroup
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = env.Post(t, "/v1/keys/"+k.ID.String()+"/refresh", jwt, nil)
			}()
		}
		wg.Wait()
		ok, conflict := 0, 0
		var next api.Refreshed
		for _, r := range results {
			switch {
			case r.Status == http.StatusCreated:
				ok++
				r.JSON(t, &next)
			case r.Status == http.StatusConflict && (r.ErrorCode() == "KEY_ALREADY_REFRESHED" || r.ErrorCode() == "KEY_NOT_ACTIVE"):
				conflict++
			default:
				t.Fatalf("round %d: %d %s", round, r.Status, r.Body)
			}
		}
		if ok != 1 || conflict != 1 {
			t.Fatalf("round %d: %d replacements, %d conflicts", round, ok, conflict)
		}
		k = next.NewKey
	}
	var live int
	if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL").Scan(&live); err != nil || live != 1 {
		t.Fatalf("live keys: %d %v", live, err)
	}
}

func TestScopes(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "scopes@example.com")
	if _, err := env.Pool.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	env.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "")
	if _, err := env.Pool.Exec(context.Background(), "UPDATE owners SET tier = 'team'"); err != nil {
		t.Fatal(err)
	}
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "x", "scopes": []string{"keys:admin"}}).Want(t, http.StatusBadRequest, "INVALID_SCOPE")
	var ro api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "read-only", "scopes": []string{"keys:read"}}).Want(t, http.StatusCreated, "").JSON(t, &ro)
	env.Get(t, "/v1/keys", ro.Secret).Want(t, http.StatusOK, "")
	env.Post(t, "/v1/keys", ro.Secret, map[string]any{"name": "x"}).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")
	env.Post(t, "/v1/keys/"+ro.ID.String()+"/refresh", ro.Secret, nil).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")
	env.Delete(t, "/v1/keys/"+ro.ID.String(), ro.Secret).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")
	env.Get(t, "/v1/events", ro.Secret).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")

	var writer api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "writer", "scopes": []string{"keys:read", "keys:write"}}).Want(t, http.StatusCreated, "").JSON(t, &writer)
	// A key cannot mint a key with more than it holds.
	env.Post(t, "/v1/keys", writer.Secret, map[string]any{"name": "x", "scopes": []string{"events:read"}}).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")
	var child api.CreatedKey
	env.Post(t, "/v1/keys", writer.Secret, map[string]any{"name": "child"}).Want(t, http.StatusCreated, "").JSON(t, &child)
	if strings.Join(child.Scopes, ",") != "keys:read,keys:write" {
		t.Fatalf("child scopes: %v", child.Scopes)
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "v@example.com")
	cases := []struct {
		name, body, code string
	}{
		{"malformed JSON", `{"name":`, "INVALID_JSON"},
		{"not an object", `[1]`, "INVALID_JSON"},
		{"unknown field", `{"name":"a","colour":"red"}`, "INVALID_JSON"},
		{"wrong type", `{"name":5}`, "INVALID_JSON"},
		{"empty body", ``, "INVALID_JSON"},
		{"two values", `{"name":"a"}{}`, "INVALID_JSON"},
		{"blank name", `{"name":"   "}`, "VALIDATION_FAILED"},
		{"long name", `{"name":"` + strings.Repeat("n", 101) + `"}`, "VALIDATION_FAILED"},
		{"empty scopes", `{"name":"a","scopes":[]}`, "VALIDATION_FAILED"},
		{"both expiries", `{"name":"a","expires_in":3600,"expires_at":"2030-01-01T00:00:00Z"}`, "VALIDATION_FAILED"},
		{"past expiry", `{"name":"a","expires_at":"2020-01-01T00:00:00Z"}`, "VALIDATION_FAILED"},
		{"short expiry", `{"name":"a","expires_in":5}`, "VALIDATION_FAILED"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := env.Do(t, apitest.Request{Method: http.MethodPost, Path: "/v1/keys", Cred: jwt, Body: tc.body}).Want(t, http.StatusBadRequest, tc.code)
			if strings.Contains(string(r.Body), jwt) {
				t.Fatal("response echoes the token")
			}
		})
	}
	env.Get(t, "/v1/keys?status=weird", jwt).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	env.Get(t, "/v1/keys?limit=0", jwt).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	env.Get(t, "/v1/keys?cursor=garbage", jwt).Want(t, http.StatusBadRequest, "INVALID_CURSOR")
	env.Get(t, "/v1/events?type=deleted", jwt).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	env.Get(t, "/v1/events?since=yesterday", jwt).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	env.Get(t, "/v1/keys/not-a-uuid", jwt).Want(t, http.StatusNotFound, "NOT_FOUND")
	env.Get(t, "/v1/nothing", jwt).Want(t, http.StatusNotFound, "NOT_FOUND")
	env.Do(t, apitest.Request{Method: http.MethodPut, Path: "/v1/keys", Cred: jwt}).Want(t, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")

	// An expiring key is created with its expiry and expires.
	var k api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "temp", "expires_in": 120}).Want(t, http.StatusCreated, "").JSON(t, &k)
	if k.ExpiresAt == nil {
		t.Fatalf("no expiry: %+v", k)
	}
}

func TestPaginationAndStatusFilter(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "pages@example.com")
	env.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "")
	if _, err := env.Pool.Exec(context.Background(), "UPDATE owners SET tier = 'team'"); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for i := 0; i < 7; i++ {
		var k api.CreatedKey
		env.Post(t, "/v1/keys", jwt, map[string]any{"name": "k"}).Want(t, http.StatusCreated, "").JSON(t, &k)
		ids[k.ID.String()] = true
		if i < 2 {
			env.Delete(t, "/v1/keys/"+k.ID.String(), jwt).Want(t, http.StatusOK, "")
		}
	}
	seen := map[string]bool{}
	path := "/v1/keys?limit=3"
	pages := 0
	for {
		var page api.KeyList
		env.Get(t, path, jwt).Want(t, http.StatusOK, "").JSON(t, &page)
		pages++
		for i, k := range page.Data {
			if seen[k.ID.String()] {
				t.Fatalf("key %s twice", k.ID)
			}
			seen[k.ID.String()] = true
			if i > 0 && k.CreatedAt.After(page.Data[i-1].CreatedAt) {
				t.Fatal("not newest first")
			}
		}
		if page.NextCursor == nil {
			break
		}
		path = "/v1/keys?limit=3&cursor=" + *page.NextCursor
	}
	if len(seen) != 7 || pages != 3 {
		t.Fatalf("saw %d keys in %d pages", len(seen), pages)
	}
	for status, want := range map[string]int{"active": 5, "revoked": 2, "expired": 0, "all": 7} {
		var l api.KeyList
		env.Get(t, "/v1/keys?status="+status, jwt).Want(t, http.StatusOK, "").JSON(t, &l)
		if len(l.Data) != want {
			t.Errorf("status=%s: %d keys, want %d", status, len(l.Data), want)
		}
	}
	var ev api.EventList
	env.Get(t, "/v1/events?type=revoked", jwt).Want(t, http.StatusOK, "").JSON(t, &ev)
	if len(ev.Data) != 2 {
		t.Fatalf("revoked events: %d", len(ev.Data))
	}
	env.Get(t, "/v1/events?until=2000-01-01T00:00:00Z", jwt).Want(t, http.StatusOK, "").JSON(t, &ev)
	if len(ev.Data) != 0 {
		t.Fatalf("events before 2000: %d", len(ev.Data))
	}
}

// The seed service's single-key API over the same rules.
func TestSeedAPI(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "seed@example.com")
	const path = "/api/v1/auth/api-keys"
	env.Get(t, path, jwt).Want(t, http.StatusNotFound, "NOT_FOUND")
	env.Delete(t, path, jwt).Want(t, http.StatusNotFound, "NOT_FOUND")
	var created api.SeedCreatedKey
	env.Post(t, path, jwt, map[string]any{"name": "daemon"}).Want(t, http.StatusCreated, "").JSON(t, &created)
	if created.Name != "daemon" || !strings.HasPrefix(created.Key, "mk_") {
		t.Fatalf("created: %+v", created)
	}
	if _, err := env.Pool.Exec(context.Background(), "UPDATE owners SET tier = 'pro'"); err != nil {
		t.Fatal(err)
	}
	env.Post(t, path, jwt, nil).Want(t, http.StatusConflict, "KEY_ALREADY_EXISTS")
	var info api.SeedKeyInfo
	env.Do(t, apitest.Request{Method: http.MethodGet, Path: path, Headers: map[string]string{"X-Makima-Api-Key": created.Key}}).
		Want(t, http.StatusOK, "").JSON(t, &info)
	if info.ID != created.ID || info.Prefix != created.Prefix {
		t.Fatalf("info: %+v", info)
	}
	var refreshed api.SeedRefreshedKey
	env.Post(t, path+"/refresh", created.Key, nil).Want(t, http.StatusOK, "").JSON(t, &refreshed)
	if !refreshed.PreviousKeyRevoked || refreshed.Name != "daemon" || refreshed.ID == created.ID {
		t.Fatalf("refreshed: %+v", refreshed)
	}
	env.Get(t, path, created.Key).Want(t, http.StatusUnauthorized, "KEY_REVOKED")
	var revoked api.SeedRevoked
	env.Delete(t, path, refreshed.Key).Want(t, http.StatusOK, "").JSON(t, &revoked)
	if revoked.RevokedKeyPrefix != refreshed.Prefix {
		t.Fatalf("revoked: %+v", revoked)
	}
	var events api.EventList
	env.Get(t, "/v1/events", jwt).Want(t, http.StatusOK, "").JSON(t, &events)
	if len(events.Data) != 4 {
		t.Fatalf("seed API wrote %d events, want 4", len(events.Data))
	}
}
