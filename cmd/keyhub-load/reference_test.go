package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// The reference answers GET /v1/keys with exactly the page keyhub answers
// (the same rows, statuses and wire shape): otherwise the loadtest's ratio
// would compare different work.
func TestReferenceAnswersAsKeyhub(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "reference@example.com")
	var me api.Me
	env.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "").JSON(t, &me)
	for i := range 3 {
		var k api.CreatedKey
		env.Post(t, "/v1/keys", jwt, map[string]any{"name": fmt.Sprintf("old-%d", i), "expires_in": 3600}).Want(t, http.StatusCreated, "").JSON(t, &k)
		env.Delete(t, "/v1/keys/"+k.ID.String(), jwt).Want(t, http.StatusOK, "")
	}
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "live", "metadata": map[string]any{"team": "a"}, "allowed_cidrs": []string{"10.0.0.0/8"}}).Want(t, http.StatusCreated, "")

	ref := httptest.NewServer(referenceHandler(env.Pool, me.OwnerID))
	defer ref.Close()
	for _, limit := range []int{2, 20} {
		path := fmt.Sprintf("/v1/keys?limit=%d", limit)
		var want, got any
		env.Get(t, path, jwt).Want(t, http.StatusOK, "").JSON(t, &want)
		want.(map[string]any)["next_cursor"] = nil // the reference keeps no cursor
		resp, err := http.Get(ref.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("reference: %d %v", resp.StatusCode, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("limit %d: the reference answers\n%v\nkeyhub\n%v", limit, got, want)
		}
	}
}

// BenchmarkListing is keyhub's GET /v1/keys (20 rows, cached mk_ key) and
// the reference's, in process against one database: what keyhub adds to
// the listing, without the network (go test -bench Listing -cpuprofile).
// On a loaded machine, run it with -count and compare like with like: the
// first sub-benchmark also pays for the freshly written rows.
func BenchmarkListing(b *testing.B) {
	env := apitest.New(b, map[string]string{"RATE_LIMIT_TIER_RPM": "free=100000000"})
	jwt := env.Token(b, "listing@example.com")
	var me api.Me
	env.Get(b, "/v1/me", jwt).Want(b, http.StatusOK, "").JSON(b, &me)
	for i := range 19 { // the tier allows one active key: 19 revoked, then the live one
		var k api.CreatedKey
		env.Post(b, "/v1/keys", jwt, map[string]any{"name": fmt.Sprintf("old-%d", i)}).Want(b, http.StatusCreated, "").JSON(b, &k)
		env.Delete(b, "/v1/keys/"+k.ID.String(), jwt).Want(b, http.StatusOK, "")
	}
	var live api.CreatedKey
	env.Post(b, "/v1/keys", jwt, map[string]any{"name": "live"}).Want(b, http.StatusCreated, "").JSON(b, &live)
	for _, tc := range []struct {
		name    string
		handler http.Handler
	}{{"reference", referenceHandler(env.Pool, me.OwnerID)}, {"keyhub", env.App.Handler}} {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/v1/keys?limit=20", nil)
			req.Header.Set("X-API-Key", live.Secret)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					w := httptest.NewRecorder()
					tc.handler.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
		})
	}
}
