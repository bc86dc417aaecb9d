package httpapi_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// GET /v1/keys/{id}/usage: an hourly series, every hour of [from, to)
// present, counted hours filled from what was flushed.
func TestKeyUsageSeries(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"LAST_USED_FLUSH_INTERVAL": "1h"})
	jwt := env.Token(t, "usage@example.com")
	var key api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "counted", "scopes": []string{"keys:read"}}).Want(t, http.StatusCreated, "").JSON(t, &key)
	env.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, "")
	env.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, "")
	env.Delete(t, "/v1/keys/"+key.ID.String(), key.Secret).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")
	if err := env.App.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	from := now.Add(-3 * time.Hour)
	path := "/v1/keys/" + key.ID.String() + "/usage?from=" + url.QueryEscape(from.Format(time.RFC3339Nano)) + "&to=" + url.QueryEscape(now.Format(time.RFC3339Nano))
	var got api.KeyUsage
	env.Get(t, path, jwt).Want(t, http.StatusOK, "").JSON(t, &got)
	if !got.From.Equal(from.Truncate(time.Hour)) || !got.To.After(now) || got.To.Sub(now) > time.Hour || len(got.Hours) != 4 && len(got.Hours) != 3 {
		t.Fatalf("series from %v to %v with %d hours, asked %v to %v", got.From, got.To, len(got.Hours), from, now)
	}
	last := got.Hours[len(got.Hours)-1]
	if want := (api.UsageCounts{OK: 2, Refused: 1}); got.Totals != want || last.UsageCounts != want || !last.Hour.Equal(now.Truncate(time.Hour)) {
		t.Fatalf("totals %+v, last hour %+v; want %+v in the current hour", got.Totals, last, want)
	}
	for i, h := range got.Hours[:len(got.Hours)-1] {
		if h.UsageCounts != (api.UsageCounts{}) || !h.Hour.Equal(got.From.Add(time.Duration(i)*time.Hour)) {
			t.Fatalf("hour %d: %+v", i, h)
		}
	}

	// Another owner's key is not found; the key itself may read it.
	other := env.Token(t, "other@example.com")
	env.Get(t, "/v1/keys/"+key.ID.String()+"/usage", other).Want(t, http.StatusNotFound, "NOT_FOUND")
	env.Get(t, "/v1/keys/"+key.ID.String()+"/usage", key.Secret).Want(t, http.StatusOK, "")
}

// A request from outside a key's allowed networks counts as refused in its
// usage: the owner sees attempts from elsewhere.
func TestKeyUsageCountsRequestsFromOutsideAllowedNetworks(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"LAST_USED_FLUSH_INTERVAL": "1h"})
	jwt := env.Token(t, "usage-cidr@example.com")
	var key api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "pinned", "allowed_cidrs": []string{"10.0.0.0/8"}}).Want(t, http.StatusCreated, "").JSON(t, &key)
	env.Get(t, "/v1/me", key.Secret).Want(t, http.StatusForbidden, "IP_NOT_ALLOWED")
	if err := env.App.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got api.KeyUsage
	env.Get(t, "/v1/keys/"+key.ID.String()+"/usage", jwt).Want(t, http.StatusOK, "").JSON(t, &got)
	if want := (api.UsageCounts{Refused: 1}); got.Totals != want {
		t.Fatalf("totals %+v, want %+v", got.Totals, want)
	}
}

func TestKeyUsageRefusesBadRanges(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "range@example.com")
	var key api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "ranged"}).Want(t, http.StatusCreated, "").JSON(t, &key)
	base := "/v1/keys/" + key.ID.String() + "/usage"
	for _, query := range []string{
		"?from=",
		"?to=",
		"?from=yesterday",
		"?from=2026-12-06T10:00:00Z&to=2026-12-06T10:00:00Z", // empty
		"?from=2026-12-06T11:00:00Z&to=2026-12-06T10:00:00Z", // backwards
		"?from=2026-10-01T00:00:00Z&to=2026-12-01T00:00:00Z", // over 31 days
	} {
		env.Get(t, base+query, jwt).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	}
	env.Get(t, base+"?from=2026-11-01T00:00:00Z&to=2026-12-01T23:59:00Z", jwt).Want(t, http.StatusOK, "")
	env.Get(t, "/v1/keys/not-a-uuid/usage", jwt).Want(t, http.StatusNotFound, "NOT_FOUND")
}
