package httpapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// A key's read says where its last use came from: the trusted client
// address and the User-Agent, written by the batched flush with
// last_used_at and never per request. Every front door that counts as a
// use (REST, forward auth, the verify API) records it; two processes on
// one database flushing in either order leave the newer use.
func TestKeyLastUseRecordsWhereFrom(t *testing.T) {
	t.Parallel()
	const verifyToken = "lastuse-verify-token-0123456789abcdef"
	vars := map[string]string{
		"LAST_USED_FLUSH_INTERVAL": "1h", // only the test's flushes write
		"TRUSTED_PROXIES":          "127.0.0.1/32",
		"VERIFY_TOKENS":            verifyToken,
		"PRODUCT_SCOPES":           "app:read",
	}
	first := apitest.New(t, vars)
	second := first.Replica(t, nil)
	ctx := context.Background()
	from := func(addr, agent string) map[string]string {
		return map[string]string{"X-Forwarded-For": addr, "User-Agent": agent}
	}
	// lastUse reads the key as its owner sees it.
	lastUse := func(t *testing.T, jwt string, key api.CreatedKey) api.Key {
		t.Helper()
		var got api.Key
		first.Get(t, "/v1/keys/"+key.ID.String(), jwt).Want(t, http.StatusOK, "").JSON(t, &got)
		return got
	}
	flush := func(t *testing.T, envs ...*apitest.Env) {
		t.Helper()
		for _, env := range envs {
			if err := env.App.FlushUsage(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	wantFrom := func(t *testing.T, got api.Key, ip, agent string) {
		t.Helper()
		if got.LastUsedAt == nil || deref(got.LastUsedIP) != ip || deref(got.LastUsedUserAgent) != agent {
			t.Fatalf("last use at %v from %q with %q, want from %q with %q", got.LastUsedAt, deref(got.LastUsedIP), deref(got.LastUsedUserAgent), ip, agent)
		}
	}

	t.Run("rest", func(t *testing.T) {
		jwt := first.Token(t, uniqueEmail("lastuse-rest"))
		key := createKey(t, first, jwt)
		// The agent arrives with a tab and a byte that is not UTF-8: it is
		// stored as displayable text, as the audit trail stores agents.
		first.Do(t, apitest.Request{Method: http.MethodGet, Path: "/v1/me", Cred: key.Secret,
			Headers: from("203.0.113.10", "daemon/1.0\t(linux)\xff")}).Want(t, http.StatusOK, "")
		if got := lastUse(t, jwt, key); got.LastUsedAt != nil || got.LastUsedIP != nil || got.LastUsedUserAgent != nil {
			t.Fatalf("written per request: %+v", got)
		}
		// The second process sees a later use, from elsewhere; its flush
		// comes first, and the first process's older use must not undo it.
		second.Do(t, apitest.Request{Method: http.MethodGet, Path: "/v1/me", Cred: key.Secret,
			Headers: from("2001:db8::20", "cron/2.0")}).Want(t, http.StatusOK, "")
		flush(t, second, first)
		wantFrom(t, lastUse(t, jwt, key), "2001:db8::20", "cron/2.0")

		// The first use alone, flushed: sanitized, and listed the same.
		other := first.Token(t, uniqueEmail("lastuse-rest2"))
		alone := createKey(t, first, other)
		first.Do(t, apitest.Request{Method: http.MethodGet, Path: "/v1/me", Cred: alone.Secret,
			Headers: from("203.0.113.10", "daemon/1.0\t(linux)\xff")}).Want(t, http.StatusOK, "")
		flush(t, first)
		wantFrom(t, lastUse(t, other, alone), "203.0.113.10", "daemon/1.0(linux)\uFFFD")
		var page api.KeyList
		second.Get(t, "/v1/keys", other).Want(t, http.StatusOK, "").JSON(t, &page)
		if len(page.Data) != 1 {
			t.Fatalf("listed %d keys", len(page.Data))
		}
		wantFrom(t, page.Data[0], "203.0.113.10", "daemon/1.0(linux)\uFFFD")
	})

	t.Run("forward auth", func(t *testing.T) {
		jwt := first.Token(t, uniqueEmail("lastuse-authz"))
		key := createKey(t, first, jwt)
		headers := from("198.51.100.7", "app-client/3")
		headers["X-API-Key"] = key.Secret
		second.Do(t, apitest.Request{Method: http.MethodGet, Path: "/v1/authz", Headers: headers}).Want(t, http.StatusOK, "")
		flush(t, second)
		wantFrom(t, lastUse(t, jwt, key), "198.51.100.7", "app-client/3")
	})

	t.Run("verify", func(t *testing.T) {
		jwt := first.Token(t, uniqueEmail("lastuse-verify"))
		key := createKey(t, first, jwt)
		// The backend's own address and agent are not its customer's: the
		// address is the client_ip it reports, and no agent is known.
		var answer api.KeyVerification
		first.Do(t, apitest.Request{Method: http.MethodPost, Path: "/v1/keys/verify", Cred: verifyToken,
			Body: map[string]any{"key": key.Secret, "client_ip": "192.0.2.44"}, Headers: from("203.0.113.99", "backend/9")}).
			Want(t, http.StatusOK, "").JSON(t, &answer)
		if !answer.Valid {
			t.Fatalf("verify: %+v", answer)
		}
		flush(t, first)
		wantFrom(t, lastUse(t, jwt, key), "192.0.2.44", "<null>")
	})
}
