package httpapi_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/redistest"
)

// backends runs a rate-limit test per process and in Redis (skipped
// without KEYHUB_TEST_REDIS_URL outside CI; make test always sets it).
func backends(t *testing.T, test func(t *testing.T, vars map[string]string)) {
	for _, backend := range []string{"process", "redis"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{}
			if backend == "redis" {
				vars["REDIS_URL"] = redistest.URL(t)
			}
			test(t, vars)
		})
	}
}

// randomIP is a client address no other test uses, so tests sharing one
// Redis never share a bucket.
func randomIP() string {
	return fmt.Sprintf("198.18.%d.%d", rand.IntN(256), 1+rand.IntN(254))
}

// uniqueEmail names a user no other run has: a token's subject follows
// from its email, and the Redis the tests share outlives each test.
func uniqueEmail(name string) string {
	return fmt.Sprintf("%s-%d@example.com", name, rand.Int64())
}

func createKey(t *testing.T, env *apitest.Env, jwt string) api.CreatedKey {
	t.Helper()
	var created api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "limited"}).Want(t, http.StatusCreated, "").JSON(t, &created)
	return created
}

func wantHeader(t *testing.T, r apitest.Response, name, want string) {
	t.Helper()
	if got := r.Header.Get(name); got != want {
		t.Fatalf("%s = %q, want %q (status %d)", name, got, want, r.Status)
	}
}

// grepLines keeps the lines of text that contain substr.
func grepLines(text, substr string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// wantRateLimit checks the RateLimit header: exactly what remains, and
// the reset time within the few seconds a slow test run may have taken
// since the bucket was last spent (the refill runs on the clock).
func wantRateLimit(t *testing.T, r apitest.Response, policy string, remaining, reset int) {
	t.Helper()
	got := r.Header.Get("RateLimit")
	var gotRemaining, gotReset int
	if _, err := fmt.Sscanf(got, `"`+policy+`";r=%d;t=%d`, &gotRemaining, &gotReset); err != nil ||
		gotRemaining != remaining || gotReset > reset || gotReset < reset-3 {
		t.Fatalf("RateLimit = %q, want \"%s\";r=%d;t=%d (t up to 3 s less)", got, policy, remaining, reset)
	}
}

// wantRateLimited checks a 429 RATE_LIMITED with Retry-After in [1, max]
// and the policy's headers.
func wantRateLimited(t *testing.T, r apitest.Response, policy string, maxRetry int) {
	t.Helper()
	r.Want(t, http.StatusTooManyRequests, "RATE_LIMITED")
	retry, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || retry < 1 || retry > maxRetry {
		t.Fatalf("Retry-After = %q, want 1..%d", r.Header.Get("Retry-After"), maxRetry)
	}
	wantHeader(t, r, "RateLimit-Policy", policy)
	name, _, _ := strings.Cut(policy, ";")
	if got := r.Header.Get("RateLimit"); !strings.HasPrefix(got, name+";r=0;t=") {
		t.Fatalf("RateLimit = %q, want %s;r=0;t=...", got, name)
	}
}

// Each API key has its tier's requests per minute: every authenticated
// answer says what is left (draft-ietf-httpapi-ratelimit-headers-10), and
// the request over the limit is 429 with Retry-After. The user's session
// has its own bucket.
func TestRateLimitPerKey(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, vars map[string]string) {
		vars["RATE_LIMIT_TIER_RPM"] = "free=5"
		env := apitest.New(t, vars)
		jwt := env.Token(t, uniqueEmail("limited"))
		key := createKey(t, env, jwt)
		for i := range 5 {
			r := env.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, "")
			var me api.Me
			if r.JSON(t, &me); me.Limits.RequestsPerMinute != 5 {
				t.Fatalf("/v1/me limits.requests_per_minute = %d, want the configured 5", me.Limits.RequestsPerMinute)
			}
			wantHeader(t, r, "RateLimit-Policy", `"free";q=5;w=60`)
			wantRateLimit(t, r, "free", 4-i, 12*(i+1))
		}
		r := env.Get(t, "/v1/me", key.Secret)
		wantRateLimited(t, r, `"free";q=5;w=60`, 12)
		wantRateLimit(t, r, "free", 0, 60)
		// Every route of the key is limited, not only /v1/me.
		wantRateLimited(t, env.Get(t, "/v1/keys", key.Secret), `"free";q=5;w=60`, 12)
		// Both refusals are counted for Prometheus.
		if scrape := scrapeMetrics(t, env); !strings.Contains(scrape, `keyhub_ratelimit_rejections_total{limiter="principal"} 2`) {
			t.Fatalf("rejections not counted:\n%s", grepLines(scrape, "keyhub_ratelimit"))
		}
		// The session's bucket is its own (one request spent creating the key).
		wantRateLimit(t, env.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, ""), "free", 3, 24)
		// Anonymous public routes carry no rate-limit headers.
		wantHeader(t, env.Get(t, "/healthz", ""), "RateLimit", "")
	})
}

// Two keyhub processes sharing one Redis share one limit: requests split
// between them are counted together.
func TestRateLimitSharedAcrossProcesses(t *testing.T) {
	t.Parallel()
	a := apitest.New(t, map[string]string{"REDIS_URL": redistest.URL(t), "RATE_LIMIT_TIER_RPM": "free=4"})
	b := a.Replica(t, nil)
	key := createKey(t, a, a.Token(t, uniqueEmail("shared")))
	for i, env := range []*apitest.Env{a, b, a, b} {
		r := env.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, "")
		wantRateLimit(t, r, "free", 3-i, 15*(i+1))
	}
	wantRateLimited(t, b.Get(t, "/v1/me", key.Secret), `"free";q=4;w=60`, 15)
	wantRateLimited(t, a.Get(t, "/v1/me", key.Secret), `"free";q=4;w=60`, 15)
}

// Failed authentications are limited per client address, as resolved
// through TRUSTED_PROXIES: past the burst, any request with credentials
// from that address is 429 (without a database lookup), while another
// address, with a bad or a good key, is unaffected.
func TestRateLimitFailedAuthPerClientIP(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, vars map[string]string) {
		vars["TRUSTED_PROXIES"] = "127.0.0.1/32"
		vars["AUTH_FAILURE_RATE_LIMIT"] = "20"
		vars["AUTH_FAILURE_BURST"] = "4"
		env := apitest.New(t, vars)
		good := createKey(t, env, env.Token(t, uniqueEmail("good")))
		gone := env.Token(t, uniqueEmail("gone"))
		unknown := createKey(t, env, gone)
		env.Delete(t, "/v1/keys/"+unknown.ID.String(), gone).Want(t, http.StatusOK, "")

		guesser, neighbour := randomIP(), randomIP()
		from := func(ip, cred string) apitest.Response {
			return env.Do(t, apitest.Request{Method: http.MethodGet, Path: "/v1/me", Cred: cred, Headers: map[string]string{"X-Forwarded-For": ip}})
		}
		// Malformed, unknown, revoked keys and a bad token all count.
		from(guesser, "mk_nonsense").Want(t, http.StatusUnauthorized, "INVALID_API_KEY")
		typo := []byte(good.Secret)
		typo[20] ^= 1 // still base64url: a mistyped key
		from(guesser, string(typo)).Want(t, http.StatusUnauthorized, "")
		from(guesser, unknown.Secret).Want(t, http.StatusUnauthorized, "KEY_REVOKED")
		from(guesser, "not.a.jwt").Want(t, http.StatusUnauthorized, "INVALID_TOKEN")
		r := from(guesser, unknown.Secret)
		wantRateLimited(t, r, `"auth_failures";q=4;w=12`, 3)
		if scrape := scrapeMetrics(t, env); !strings.Contains(scrape, `keyhub_ratelimit_rejections_total{limiter="auth_failure"} 1`) {
			t.Fatalf("rejection not counted:\n%s", grepLines(scrape, "keyhub_ratelimit"))
		}
		// Now even a good key from that address waits.
		wantRateLimited(t, from(guesser, good.Secret), `"auth_failures";q=4;w=12`, 3)

		// Another address is untouched, with a good key or a bad one; so is
		// the proxy's own address.
		from(neighbour, good.Secret).Want(t, http.StatusOK, "")
		from(neighbour, unknown.Secret).Want(t, http.StatusUnauthorized, "KEY_REVOKED")
		env.Get(t, "/v1/me", good.Secret).Want(t, http.StatusOK, "")
	})
}

// Redis down: authenticated requests pass (fail open), failed
// authentications are refused at once (fail closed) with 429.
func TestRateLimitRedisDown(t *testing.T) {
	t.Parallel()
	up := apitest.New(t, nil)
	key := createKey(t, up, up.Token(t, uniqueEmail("outage")))
	down := up.Replica(t, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "RATE_LIMIT_TIER_RPM": "free=1"})
	for range 3 {
		r := down.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, "")
		wantHeader(t, r, "RateLimit-Policy", `"free";q=1;w=60`)
		wantHeader(t, r, "RateLimit", "") // what remains is unknown
	}
	wantRateLimited(t, down.Get(t, "/v1/me", "mk_nonsense"), `"auth_failures";q=10;w=30`, 3)
	if scrape := scrapeMetrics(t, down); !strings.Contains(scrape, `keyhub_redis_errors_total{operation="ratelimit"} 4`) {
		t.Fatalf("Redis errors not counted (3 fail-open checks, 1 fail-closed):\n%s", grepLines(scrape, "keyhub_redis"))
	}
	// Without credentials nothing is limited.
	down.Get(t, "/v1/me", "").Want(t, http.StatusUnauthorized, "MISSING_CREDENTIALS")

	// Failing closed also stops the guessing: once the address has spent
	// its burst, its guesses no longer reach the key cache (or the
	// database behind it), though Redis cannot say so.
	for range 15 {
		guess, err := apikey.Generate()
		if err != nil {
			t.Fatal(err)
		}
		down.Get(t, "/v1/me", guess).Want(t, http.StatusTooManyRequests, "RATE_LIMITED")
	}
	if scrape := scrapeMetrics(t, down); !strings.Contains(scrape, `keyhub_key_cache_lookups_total{result="miss"} 10`) {
		t.Fatalf("guesses reached the key cache after the burst (1 key + 9 of the 10 allowed; mk_nonsense is malformed):\n%s", grepLines(scrape, "keyhub_key_cache"))
	}
}

// A key's bucket is its lineage's: the successor of a key that refreshed
// itself starts with what its predecessor left, not a full bucket (a free
// key refreshing itself used to reach ≈50,900 requests a minute). And
// refreshes spend from a budget of their own.
func TestRateLimitFollowsKeyLineage(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, vars map[string]string) {
		vars["RATE_LIMIT_TIER_RPM"] = "free=6"
		vars["KEY_REFRESH_BURST"] = "2"
		env := apitest.New(t, vars)
		key := createKey(t, env, env.Token(t, uniqueEmail("lineage")))
		refresh := func(k api.CreatedKey) apitest.Response {
			return env.Post(t, "/v1/keys/"+k.ID.String()+"/refresh", k.Secret, map[string]any{})
		}
		wantRateLimit(t, env.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, ""), "free", 5, 10)
		var refreshed api.Refreshed
		r := refresh(key).Want(t, http.StatusCreated, "")
		wantRateLimit(t, r, "free", 4, 20)
		r.JSON(t, &refreshed)
		key = refreshed.NewKey
		wantRateLimit(t, env.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, ""), "free", 3, 30)
		refresh(key).Want(t, http.StatusCreated, "").JSON(t, &refreshed)
		key = refreshed.NewKey
		// The third refresh in a row is over the refresh budget (2 at once,
		// 60 an hour: one a minute), and still spends a request.
		r = refresh(key)
		wantRateLimited(t, r, `"key_refreshes";q=2;w=120`, 60)
		env.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, "")
		wantRateLimited(t, env.Get(t, "/v1/me", key.Secret), `"free";q=6;w=60`, 10)
		if scrape := scrapeMetrics(t, env); !strings.Contains(scrape, `keyhub_ratelimit_rejections_total{limiter="refresh"} 1`) {
			t.Fatalf("refused refresh not counted:\n%s", grepLines(scrape, "keyhub_ratelimit"))
		}
	})
}
