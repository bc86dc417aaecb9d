package dashboard_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keyhub/keyhub/internal/apitest"
)

// slowNetwork serves a keyhub through a reverse proxy on its own listener
// that can hold requests, as a slow network would: the page is loaded from
// it, so every request the page makes (REST and WebSocket) passes here.
type slowNetwork struct {
	URL string

	mu      sync.Mutex
	down    bool // every request fails as if the network were gone
	hold    func(*http.Request) bool
	release chan struct{}
	held    int // requests held since the last Hold
}

func newSlowNetwork(t *testing.T, env *apitest.Env) *slowNetwork {
	t.Helper()
	target, err := url.Parse(env.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host // the WebSocket's Origin check compares with it
	}}
	n := &slowNetwork{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		if n.down {
			n.mu.Unlock()
			// No answer at all: the browser sees a network error.
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		match := n.hold != nil && n.hold(r)
		release := n.release
		if match {
			n.held++
		}
		n.mu.Unlock()
		if match {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		n.Release()
		srv.CloseClientConnections()
		srv.Close()
	})
	n.URL = srv.URL
	return n
}

// Hold keeps every request that match reports on until Release.
func (n *slowNetwork) Hold(match func(*http.Request) bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.hold, n.release, n.held = match, make(chan struct{}), 0
}

// Release lets the held requests (and every later one) through.
func (n *slowNetwork) Release() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.hold != nil {
		close(n.release)
		n.hold = nil
	}
}

// SetDown makes every request fail (true) as if the network were gone,
// or work again (false).
func (n *slowNetwork) SetDown(down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down = down
}

// Held is how many requests were held since Hold.
func (n *slowNetwork) Held() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.held
}

// waitHeld waits until n has held want requests.
func (n *slowNetwork) waitHeld(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.Held() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests held, want %d", n.Held(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// request matches requests by method and path.
func request(method, path string) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.Method == method && r.URL.Path == path }
}

// setTier moves the account of the token's user to tier (as an operator
// would, in SQL) and waits until the API answers with it.
func setTier(t *testing.T, env *apitest.Env, token, tier string) {
	t.Helper()
	var me struct {
		OwnerID string `json:"owner_id"`
		Tier    string `json:"tier"`
	}
	env.Get(t, "/v1/me", token).Want(t, http.StatusOK, "").JSON(t, &me)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := env.Pool.Exec(ctx, `UPDATE owners SET tier = $1 WHERE id = $2`, tier, me.OwnerID); err != nil {
		t.Fatalf("set tier: %v", err)
	}
	for me.Tier != tier {
		if ctx.Err() != nil {
			t.Fatalf("the API still says tier %q, want %q", me.Tier, tier)
		}
		time.Sleep(10 * time.Millisecond)
		env.Get(t, "/v1/me", token).Want(t, http.StatusOK, "").JSON(t, &me)
	}
}

// waitTokenEnded waits until the API refuses token as ended: the moment a
// page using it meets the end of its session, judged by the server's clock
// (and its leeway), not by a sleep alone. It asks only from the token's
// exp on, and seldom: each question spends the user's request budget,
// which the page needs afterwards.
func waitTokenEnded(t *testing.T, env *apitest.Env, token string) {
	t.Helper()
	var claims struct {
		Exp int64 `json:"exp"`
	}
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[min(1, len(parts)-1)])
	if err != nil || json.Unmarshal(payload, &claims) != nil || claims.Exp == 0 {
		t.Fatalf("no exp in the token: %v", err)
	}
	time.Sleep(time.Until(time.Unix(claims.Exp, 0)))
	deadline := time.Now().Add(time.Minute)
	for {
		r := env.Get(t, "/v1/me", token)
		if r.Status == http.StatusUnauthorized {
			return
		}
		if r.Status != http.StatusOK && r.Status != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("the token should have ended: GET /v1/me answers %d %s", r.Status, r.Body)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// keyCount is how many keys of the token's user the API lists with status.
func keyCount(t *testing.T, env *apitest.Env, token, status string) int {
	t.Helper()
	var page struct {
		Data []struct{ ID string } `json:"data"`
	}
	env.Get(t, "/v1/keys?limit=200&status="+status, token).Want(t, http.StatusOK, "").JSON(t, &page)
	return len(page.Data)
}

// rowCount is how many rows the table's body has.
func rowCount(t *testing.T, ctx context.Context, table string) int {
	t.Helper()
	return eval[int](t, ctx, `document.querySelectorAll('#`+table+` tbody tr').length`)
}

// doubleClick double-clicks sel where it is, as a user does: two presses
// at one spot (the second lands there whatever the first changed;
// chromedp.DoubleClick sends one press with a count of 2, one click).
func doubleClick(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		center := fmt.Sprintf(`(() => { const b = document.querySelector(%q); b.scrollIntoView({block: 'center'}); const r = b.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()`, sel)
		xy, err := chromedp.Evaluate[[]float64](center)(ctx, t)
		if err != nil {
			return err
		}
		if _, err := chromedp.MouseClickXY(xy[0], xy[1])(ctx, t); err != nil {
			return err
		}
		_, err = chromedp.MouseClickXY(xy[0], xy[1], chromedp.ClickCount(2))(ctx, t)
		return err
	})
}

// openCreateForm unfolds the create form (folded while the account has
// an active key).
var openCreateForm = chromedp.Steps(
	chromedp.Evaluate[chromedp.Void](`(p => p.open || p.querySelector('summary').click())(document.getElementById('create-panel'))`),
	chromedp.WaitVisible(chromedp.CSS("#create-panel[open] #create-name")),
)

// closeUncopiedSecret closes the secret dialog without copying: the first
// click only warns, the second closes.
var closeUncopiedSecret = chromedp.Steps(
	chromedp.Click(chromedp.ID("secret-done")),
	chromedp.WaitVisible(chromedp.ID("secret-not-copied")),
	chromedp.Click(chromedp.ID("secret-done")),
	chromedp.WaitNotVisible(chromedp.ID("secret-dialog")),
)

// choose sets a select's value as a user would (with its change event).
func choose(id, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.SetValue(chromedp.ID(id), value),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById(%q).dispatchEvent(new Event('change'))`, id)),
	)
}

// expireKey makes a key expired a day ago, as if its time had passed.
func expireKey(t *testing.T, env *apitest.Env, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := env.Pool.Exec(ctx, `UPDATE api_keys SET created_at = now() - interval '2 days', expires_at = now() - interval '1 day' WHERE id = $1`, id); err != nil {
		t.Fatalf("expire key: %v", err)
	}
}

// addUsage records requests made with a key in the hour that starts at
// hour, as keyhub's flush would have written them then (a test cannot
// wait for past hours).
func addUsage(t *testing.T, env *apitest.Env, keyID string, hour time.Time, ok, refused, rateLimited int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := env.Pool.Exec(ctx, `INSERT INTO api_key_usage (key_id, hour, ok, refused, rate_limited) VALUES ($1, $2, $3, $4, $5)`,
		keyID, hour, ok, refused, rateLimited); err != nil {
		t.Fatalf("add usage: %v", err)
	}
}
