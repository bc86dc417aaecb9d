package app_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// Two processes count the requests made with one key, each in its own
// memory: after both flush, the stored series holds exactly the ok,
// refused (a scope the key lacks) and rate-limited (429) requests the
// client saw, from both, and nothing was written before the flush.
func TestKeyUsageCountsRequestsOnEveryReplica(t *testing.T) {
	t.Parallel()
	// No flush on the ticker during the test: the counts wait in memory.
	a, b, jwt := cluster(t, map[string]string{"RATE_LIMIT_TIER_RPM": "free=6", "LAST_USED_FLUSH_INTERVAL": "1h"})
	key := createKey(t, a, jwt, map[string]any{"name": "reader", "scopes": []string{"keys:read"}})
	var want api.UsageCounts
	count := func(r apitest.Response) {
		t.Helper()
		switch {
		case r.Status == http.StatusOK:
			want.OK++
		case r.Status == http.StatusForbidden && r.ErrorCode() == "INSUFFICIENT_SCOPE":
			want.Refused++
		case r.Status == http.StatusTooManyRequests:
			want.RateLimited++
		default:
			t.Fatalf("unexpected answer %d %s", r.Status, r.Body)
		}
	}
	for range 8 {
		for _, env := range []*apitest.Env{a, b} {
			count(env.Get(t, "/v1/me", key.Secret))
			count(env.Post(t, "/v1/keys", key.Secret, map[string]any{"name": "not allowed"}))
		}
	}
	if want.OK == 0 || want.Refused == 0 || want.RateLimited == 0 {
		t.Fatalf("the requests did not reach every class: %+v", want)
	}
	// A dashboard session's requests are not a key's.
	a.Get(t, "/v1/keys", jwt).Want(t, http.StatusOK, "")

	path := "/v1/keys/" + key.ID.String() + "/usage"
	var before api.KeyUsage
	b.Get(t, path, jwt).Want(t, http.StatusOK, "").JSON(t, &before)
	if before.Totals != (api.UsageCounts{}) {
		t.Fatalf("counts stored before any flush: %+v", before.Totals)
	}
	for _, env := range []*apitest.Env{a, b} {
		if err := env.App.FlushUsage(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	var after api.KeyUsage
	b.Get(t, path, jwt).Want(t, http.StatusOK, "").JSON(t, &after)
	if after.Totals != want {
		t.Fatalf("stored %+v, the client saw %+v", after.Totals, want)
	}
	if len(after.Hours) != 24 && len(after.Hours) != 25 {
		t.Fatalf("%d hours in a default (one day) series", len(after.Hours))
	}
}
