package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// The report: process B let a key revoked on process A mint a new
// key while B's cache still held it. With B deaf to the change feed and a
// long stale bound, B still lets a read through (that much staleness is
// allowed), but no write: create, refresh and revoke re-check the acting
// key in their own transaction.
func TestRevokedKeyCannotWriteOnAProcessThatHasNotHeard(t *testing.T) {
	t.Parallel()
	a, b, jwt, proxy := clusterWithCuttableFeed(t, map[string]string{"CHANGE_FEED_STALE_BOUND": time.Minute.String()})
	key := createKey(t, a, jwt, nil)
	// Pro, for a second key; once B answers pro for the key, the tier
	// change's notice is behind it and the key is cached on B.
	upgrade(t, key.Secret, a, b)
	other := createKey(t, a, jwt, map[string]any{"name": "other", "scopes": []string{"keys:read"}})
	b.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, "")

	cutFeedOf(t, proxy, b)
	a.Delete(t, "/v1/keys/"+key.ID.String(), jwt).Want(t, http.StatusOK, "")
	a.Get(t, "/v1/me", key.Secret).Want(t, http.StatusUnauthorized, "KEY_REVOKED")
	b.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, "") // B has not heard: a read goes through

	b.Post(t, "/v1/keys", key.Secret, map[string]any{"name": "minted"}).Want(t, http.StatusUnauthorized, "KEY_REVOKED")
	b.Post(t, "/v1/keys/"+other.ID.String()+"/refresh", key.Secret, nil).Want(t, http.StatusUnauthorized, "KEY_REVOKED")
	b.Delete(t, "/v1/keys/"+other.ID.String(), key.Secret).Want(t, http.StatusUnauthorized, "KEY_REVOKED")
	var keys int
	if err := a.Pool.QueryRow(context.Background(), "SELECT count(*) FROM api_keys").Scan(&keys); err != nil {
		t.Fatal(err)
	}
	if keys != 2 {
		t.Fatalf("%d keys, want the 2 created before the revoke", keys)
	}
	if b.App.Feed.Listening() {
		t.Fatal("B's feed reconnected: the test proves nothing")
	}
	proxy.Unblock()
	b.WaitListening(t)
}
