package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/redistest"
)

// Key churn does not walk around the per-key rate limit: a free user's
// session creating a key, spending its fresh bucket, revoking it and
// creating the next used to reach ≈1,800 requests a minute (30 cycles from
// the session's own 60) through keys of 60 a minute. With the limits as
// shipped, the owner's key-creation budget (KEY_CREATE_BURST at once,
// KEY_CREATE_RATE_LIMIT an hour) ends the loop after its burst, with a 429
// that says which policy and when to retry.
func TestKeyChurnBoundedByCreationBudget(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil) // the shipped defaults: free = 60/min, 10 creations at once, 60 an hour
	jwt := env.Token(t, uniqueEmail("churn"))
	start := time.Now()
	allowed, created := 0, 0
	var refused apitest.Response
	for {
		r := env.Post(t, "/v1/keys", jwt, map[string]any{"name": "churn"})
		if r.Status != http.StatusCreated {
			refused = r
			break
		}
		created++
		var key api.CreatedKey
		r.JSON(t, &key)
		for env.Get(t, "/v1/me", key.Secret).Status == http.StatusOK {
			allowed++
		}
		if r := env.Delete(t, "/v1/keys/"+key.ID.String(), jwt); r.Status != http.StatusOK {
			refused = r
			break
		}
	}
	elapsed := time.Since(start)
	t.Logf("%d requests through %d fresh keys in %s", allowed, created, elapsed.Round(time.Millisecond))
	// What stopped the loop is the creation budget, not the session's
	// own requests: 10 at once, then one a minute (w = 10 minutes).
	wantRateLimited(t, refused, `"key_creations";q=10;w=600`, 60)
	if !strings.Contains(string(refused.Body), "too many keys created") {
		t.Fatalf("refusal does not say why: %s", refused.Body)
	}
	// The README's bound: each creation buys at most one bucket of 60,
	// and the keys refill at one a second while they live.
	refills := int(elapsed / time.Minute)
	if bound := 60*(10+1+refills) + int(elapsed/time.Second) + 1; created > 10+1+refills || allowed > bound {
		t.Fatalf("%d requests through %d fresh keys in %s: want at most %d keys and %d requests", allowed, created, elapsed, 10+1+refills, bound)
	}
	if scrape := scrapeMetrics(t, env); !strings.Contains(scrape, `keyhub_ratelimit_rejections_total{limiter="key_create"} 1`) {
		t.Fatalf("refused creation not counted:\n%s", grepLines(scrape, "keyhub_ratelimit"))
	}
}

// The creation budget is the owner's, whoever creates: a session, a key
// minting children (keys:write) and the seed service's create spend the
// same bucket, and with REDIS_URL every process spends it together.
func TestKeyCreationBudgetPerOwnerAcrossProcesses(t *testing.T) {
	t.Parallel()
	a := apitest.New(t, map[string]string{"REDIS_URL": redistest.URL(t), "KEY_CREATE_BURST": "3"})
	b := a.Replica(t, nil)
	jwt := a.Token(t, uniqueEmail("creations"))
	setTier(t, a, jwt, "pro")
	var parent api.CreatedKey
	a.Post(t, "/v1/keys", jwt, map[string]any{"name": "parent"}).Want(t, http.StatusCreated, "").JSON(t, &parent)
	b.Post(t, "/v1/keys", parent.Secret, map[string]any{"name": "child"}).Want(t, http.StatusCreated, "")
	// The seed service's create is refused (the user has keys), but the
	// attempt spent from the budget like any other.
	b.Post(t, "/api/v1/auth/api-keys", jwt, map[string]any{}).Want(t, http.StatusConflict, "KEY_ALREADY_EXISTS")
	// Three spent (the parent, the child, the seed attempt): the fourth,
	// on either process and by either credential, is refused.
	wantRateLimited(t, a.Post(t, "/v1/keys", parent.Secret, map[string]any{"name": "child"}), `"key_creations";q=3;w=180`, 60)
	wantRateLimited(t, b.Post(t, "/v1/keys", jwt, map[string]any{"name": "another"}), `"key_creations";q=3;w=180`, 60)
	// Another owner's budget is untouched.
	a.Post(t, "/v1/keys", a.Token(t, uniqueEmail("other")), map[string]any{"name": "mine"}).Want(t, http.StatusCreated, "")
}
