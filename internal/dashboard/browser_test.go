package dashboard_test

// Browser tests: the real page in headless Chromium (driven by chromedp)
// against a real keyhub on a real listener and PostgreSQL. One browser
// serves the whole package; each test opens its own tabs.
//
// KEYHUB_DASHBOARD_SCREENSHOTS=dir saves a PNG of each page there (the
// README's pictures come from internal/dashboard/docs/).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
	"github.com/go-chi/cors"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/dashboard"
	"github.com/keyhub/keyhub/internal/testdep"
)

// browser is the package's one Chromium; nil when none could be found
// (then every browser test skips, or fails in CI: `make test` installs it
// first).
var (
	browser      context.Context
	noBrowserWhy string
)

func TestMain(m *testing.M) {
	os.Exit(runWithBrowser(m))
}

func runWithBrowser(m *testing.M) int {
	path := findChromium()
	if path == "" {
		noBrowserWhy = "no chromium on PATH (make test installs Debian's chromium; or apt-get install -y chromium)"
		return m.Run()
	}
	profile, err := os.MkdirTemp("", "keyhub-chromium-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(profile)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in CI containers
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(filepath.Join(profile, "profile")),
		// Chromium's own temporary folders (org.chromium.Chromium.*, the
		// profile's singleton socket) go into the folder removed below,
		// not into /tmp for good.
		chromedp.Env("TMPDIR="+profile),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		fmt.Fprintf(os.Stderr, "start chromium %s: %v\n", path, err)
		return 1
	}
	browser = ctx
	code := m.Run()
	// Closed through DevTools, so it stops its own helper processes
	// (killed, they were left behind) before the folder is removed.
	closeCtx, cancelClose := context.WithTimeout(ctx, 10*time.Second)
	defer cancelClose()
	if err := chromedp.Cancel(closeCtx); err != nil {
		fmt.Fprintf(os.Stderr, "close chromium: %v\n", err)
	}
	return code
}

func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// tab opens a browser tab for t, closed when t ends; if t fails, the
// page's console output is logged. A JavaScript exception or a Content
// Security Policy violation in the tab fails t.
func tab(t *testing.T) context.Context {
	t.Helper()
	if browser == nil {
		testdep.Missing(t, noBrowserWhy)
	}
	ctx, cancel := chromedp.NewContext(browser)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	// Every tab acts as the focused one: the package's tests run side by
	// side in one browser, where only one tab has focus, and a page without
	// it is refused the Clipboard API ("Document is not focused"), so a
	// copy would depend on which test ran last.
	if _, err := chromedp.Call(ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
		t.Fatalf("focus emulation: %v", err)
	}
	var mu sync.Mutex
	var console, problems []string
	go func() {
		for msg, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			mu.Lock()
			console = append(console, msg.String())
			if msg.IsException() || strings.Contains(msg.Text, "Content Security Policy") {
				problems = append(problems, msg.String())
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		mu.Lock()
		for _, p := range problems {
			t.Errorf("browser: %s", p)
		}
		mu.Unlock()
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			for _, line := range console {
				t.Log("browser console:", line)
			}
		}
	})
	return ctx
}

// do runs steps in the tab with a deadline, failing t on error.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	stepCtx, cancel := context.WithTimeout(ctx, 30*time.Second) // a ceiling: the machine may be busy
	defer cancel()
	if err := chromedp.Do(stepCtx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the tab.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor waits until the JavaScript predicate is true.
func waitFor(t *testing.T, ctx context.Context, what, predicate string) {
	t.Helper()
	do(t, ctx, what, chromedp.Poll[chromedp.Void](predicate, chromedp.WithPollingTimeout(20*time.Second)))
}

// screenshot saves the tab as name.png when KEYHUB_DASHBOARD_SCREENSHOTS
// names a folder.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("KEYHUB_DASHBOARD_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// signIn uses the dev-mode form of the page at pageURL.
func signIn(t *testing.T, ctx context.Context, pageURL, email string) {
	t.Helper()
	do(t, ctx, "sign in",
		chromedp.Navigate(pageURL),
		chromedp.WaitVisible(chromedp.ID("dev-email")),
		chromedp.SetValue(chromedp.ID("dev-email"), email),
		chromedp.Click(chromedp.CSS("#dev-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#me-details dd")),
	)
}

func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	return eval[string](t, ctx, fmt.Sprintf(`document.querySelector(%q).innerText`, css))
}

// TestDashboardKeyLifecycle walks the acceptance path: dev sign-in, create
// a key (secret shown once, gone after a reload), refresh it with a grace
// period, revoke the old one, watch the three audit events (the last one
// arriving live in another tab), and close a daemon's connection.
func TestDashboardKeyLifecycle(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, map[string]string{"JWT_LEEWAY": "1ms"})
	page := env.URL + "/"

	// An expired session in this tab's storage sends the user to sign-in.
	expired, err := env.Issuer.Token(env.TokenIssuer, "alice@example.com", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	keys := tab(t)
	do(t, keys, "open signed out",
		chromedp.Navigate(env.URL+"/dashboard/#/keys"),
		chromedp.WaitVisible(chromedp.ID("dev-email")),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`sessionStorage.setItem('keyhub.session', JSON.stringify({kind:'dev', email:'alice@example.com', access_token:%q, expires_at: Date.now()+3600000}))`, expired)),
	)
	waitTokenEnded(t, env, expired)
	do(t, keys, "reload with an expired session",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.ID("notice-text")),
		chromedp.WaitVisible(chromedp.ID("dev-email")),
	)
	if got := text(t, keys, "#notice-text"); !strings.Contains(got, "session has expired") {
		t.Fatalf("notice %q, want the expired-session message", got)
	}
	if eval[bool](t, keys, `document.getElementById('nav').checkVisibility()`) {
		t.Fatal("the page navigation shows while signed out")
	}

	signIn(t, keys, page, "alice@example.com")
	if got := text(t, keys, "#me-details"); !strings.Contains(got, "alice@example.com") || !strings.Contains(got, "free") {
		t.Fatalf("who am I shows %q", got)
	}
	if got := text(t, keys, "#me-limits"); !strings.Contains(got, "Active keys\n1") {
		t.Fatalf("limits show %q", got)
	}

	// Create: the secret is shown once, with a warning and a copy button.
	do(t, keys, "create a key",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
		chromedp.WaitVisible(chromedp.CSS("#create-panel[open] #create-name")), // open: no key yet
		chromedp.SendKeys(chromedp.ID("create-name"), "laptop"),
		chromedp.Click(chromedp.CSS("#create-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("secret-value")),
		chromedp.WaitVisible(chromedp.CSS(`#keys-table tr[data-status=active]`)),
	)
	secret := eval[string](t, keys, `document.getElementById('secret-value').value`)
	if !strings.HasPrefix(secret, "mk_") || len(secret) != 46 {
		t.Fatalf("secret %q", secret)
	}
	if got := text(t, keys, "#secret-dialog .warning"); !strings.Contains(got, "only time") {
		t.Fatalf("warning %q", got)
	}
	do(t, keys, "copy", chromedp.Click(chromedp.ID("secret-copy")))
	waitFor(t, keys, "copied", `document.getElementById('secret-copied').textContent.includes('Copied')`)
	env.Get(t, "/v1/me", secret).Want(t, http.StatusOK, "")

	do(t, keys, "close the secret",
		chromedp.Click(chromedp.ID("secret-done")),
		chromedp.WaitNotVisible(chromedp.ID("secret-dialog")),
	)
	leaks := `[document.documentElement.outerHTML, document.body.innerText, JSON.stringify(sessionStorage), JSON.stringify(localStorage), location.href, ...[...document.querySelectorAll('input')].map(i => i.value)].some(s => s.includes(%q))`
	if eval[bool](t, keys, fmt.Sprintf(leaks, secret)) {
		t.Fatal("the secret is still in the page after its dialog closed")
	}
	do(t, keys, "reload",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`#keys-table tr[data-status=active]`)),
	)
	if eval[bool](t, keys, fmt.Sprintf(leaks, secret)) {
		t.Fatal("the secret is in the page after a reload")
	}
	oldPrefix := secret[:11]
	oldKeyID := eval[string](t, keys, `document.querySelector('#keys-table tr[data-status=active]').dataset.keyId`)
	if got := eval[string](t, keys, `document.querySelector('#keys-table tr[data-status=active]').dataset.prefix`); got != oldPrefix {
		t.Fatalf("listed prefix %q, want %q", got, oldPrefix)
	}

	// Refresh with a one-hour grace: a new secret, the old key still works.
	do(t, keys, "refresh with grace",
		chromedp.Click(chromedp.CSS(`#keys-table tr[data-prefix="`+oldPrefix+`"] button.refresh`)),
		chromedp.WaitVisible(chromedp.ID("refresh-grace")),
		chromedp.SetValue(chromedp.ID("refresh-grace"), "3600"),
		chromedp.Click(chromedp.ID("refresh-confirm")),
		chromedp.WaitVisible(chromedp.ID("secret-value")),
	)
	daemonKey := eval[string](t, keys, `document.getElementById('secret-value').value`)
	if !strings.HasPrefix(daemonKey, "mk_") || daemonKey == secret {
		t.Fatalf("refreshed secret %q", daemonKey)
	}
	do(t, keys, "close the new secret without copying it", closeUncopiedSecret)
	waitFor(t, keys, "two keys listed", `document.querySelectorAll('#keys-table tbody tr[data-status=active]').length === 2`)
	env.Get(t, "/v1/me", secret).Want(t, http.StatusOK, "") // in its grace period

	// A second tab (its own session) watches the audit trail.
	events := tab(t)
	signIn(t, events, page, "alice@example.com")
	do(t, events, "open events",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=events]`)),
		chromedp.WaitVisible(chromedp.CSS(`#events-table tr[data-type=refreshed]`)),
	)
	waitFor(t, events, "live updates on", `document.getElementById('live-status').textContent === 'Live updates: on'`)
	// A refresh writes two events: the old key's "refreshed" and the new key's "created".
	eventTypes := `[...document.querySelectorAll('#events-table tbody tr')].map(r => r.dataset.type).join(',')`
	if got := eval[string](t, events, eventTypes); got != "created,refreshed,created" {
		t.Fatalf("events before the revoke %q, want created,refreshed,created", got)
	}

	// Revoke the old key, with confirmation, in the first tab.
	do(t, keys, "revoke",
		chromedp.Click(chromedp.CSS(`#keys-table tr[data-prefix="`+oldPrefix+`"] button.revoke`)),
		chromedp.WaitVisible(chromedp.ID("confirm-yes")),
		chromedp.Click(chromedp.ID("confirm-yes")),
		chromedp.WaitVisible(chromedp.CSS(`#keys-table tr[data-prefix="`+oldPrefix+`"][data-status=revoked]`)),
	)
	env.Get(t, "/v1/me", secret).Want(t, http.StatusUnauthorized, "KEY_REVOKED")

	do(t, events, "the revoke arrives live",
		chromedp.WaitVisible(chromedp.CSS(`#events-table tr[data-type=revoked][data-live=true]`)),
	)
	if got := eval[string](t, events, eventTypes); got != "revoked,created,refreshed,created" {
		t.Fatalf("events %q, want revoked,created,refreshed,created", got)
	}
	// Every change was made by the signed-in user, not by a key.
	actors := `[...document.querySelectorAll('#events-table tbody td.actor')].map(c => c.textContent).join(',')`
	if got := eval[string](t, events, actors); got != "alice@example.com,alice@example.com,alice@example.com,alice@example.com" {
		t.Fatalf("actors %q, want alice@example.com four times", got)
	}

	// Filters: the old key's own three events, then one type.
	do(t, events, "filter by key",
		chromedp.SetValue(chromedp.ID("events-key"), oldKeyID),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('events-key').dispatchEvent(new Event('change'))`),
	)
	waitFor(t, events, "the old key's events", eventTypes+` === 'revoked,refreshed,created'`)
	do(t, events, "filter by type",
		chromedp.SetValue(chromedp.ID("events-type"), "revoked"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('events-type').dispatchEvent(new Event('change'))`),
	)
	waitFor(t, events, "only revoked", eventTypes+` === 'revoked'`)

	// A daemon connects with the refreshed key; the page lists it and closes it.
	daemonCtx, cancelDaemon := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelDaemon()
	daemon, _, err := websocket.Dial(daemonCtx, "ws"+strings.TrimPrefix(env.URL, "http")+"/v1/ws", &websocket.DialOptions{
		HTTPHeader: http.Header{"X-Api-Key": []string{daemonKey}},
	})
	if err != nil {
		t.Fatalf("daemon dial: %v", err)
	}
	defer daemon.CloseNow()
	if _, msg, err := daemon.Read(daemonCtx); err != nil || !strings.Contains(string(msg), `"welcome"`) {
		t.Fatalf("daemon welcome: %s %v", msg, err)
	}
	daemonRow := `#connections-table tr[data-key-prefix="` + daemonKey[:11] + `"]`
	do(t, keys, "connections",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=connections]`)),
		chromedp.WaitVisible(chromedp.CSS(daemonRow)),
	)
	do(t, keys, "close the daemon's connection",
		chromedp.Click(chromedp.CSS(daemonRow+` button.close-connection`)),
		chromedp.WaitVisible(chromedp.ID("confirm-yes")),
		chromedp.Click(chromedp.ID("confirm-yes")),
		chromedp.WaitNotPresent(chromedp.CSS(daemonRow)),
	)
	for {
		_, _, err := daemon.Read(daemonCtx)
		if err == nil {
			continue // an event sent before the close
		}
		if status := websocket.CloseStatus(err); status != 4002 {
			t.Fatalf("daemon closed with %v (%d), want 4002 closed by owner", err, status)
		}
		break
	}
}

// TestDashboardCrossOrigin serves the page from a second origin, listed in
// ALLOWED_ORIGINS, and uses keyhub through CORS (REST) and the WebSocket's
// Origin check; the same page from an unlisted origin cannot sign in.
func TestDashboardCrossOrigin(t *testing.T) {
	t.Parallel()
	// The page's server first: its origin goes into keyhub's configuration.
	static := httptest.NewUnstartedServer(nil)
	defer static.Close()
	origin := "http://" + static.Listener.Addr().String()
	env := apitest.NewDev(t, map[string]string{"ALLOWED_ORIGINS": origin, "KEY_CREATE_BURST": "100"}) // 22 keys, two pages
	pageFiles := dashboard.Handler(dashboard.Config{APIURL: env.URL, DevSignIn: true})
	static.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/limited" { // what a rate-limited API answers
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"error":{"code":"RATE_LIMITED","message":"slow down"}}`))
			return
		}
		pageFiles.ServeHTTP(w, r)
	})
	static.Start()

	// 21 revoked keys and one active: the list takes two pages.
	carol := env.Token(t, "carol@example.com")
	for i := range 21 {
		var k struct{ ID string }
		env.Post(t, "/v1/keys", carol, map[string]any{"name": fmt.Sprintf("old-%02d", i)}).Want(t, http.StatusCreated, "").JSON(t, &k)
		env.Delete(t, "/v1/keys/"+k.ID, carol).Want(t, http.StatusOK, "")
	}

	ctx := tab(t)
	signIn(t, ctx, static.URL+"/", "carol@example.com")
	if got := text(t, ctx, "#me-details"); !strings.Contains(got, "carol@example.com") {
		t.Fatalf("who am I shows %q", got)
	}
	do(t, ctx, "create a key across origins",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
		chromedp.WaitVisible(chromedp.CSS("#create-panel[open] #create-name")), // open: no active key
		chromedp.SendKeys(chromedp.ID("create-name"), "cross"),
		chromedp.Click(chromedp.CSS("#create-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("secret-value")),
		closeUncopiedSecret,
		chromedp.Click(chromedp.CSS(`#nav a[data-page=events]`)),
		chromedp.WaitVisible(chromedp.CSS(`#events-table tr[data-type=created]`)),
	)
	waitFor(t, ctx, "live updates across origins", `document.getElementById('live-status').textContent === 'Live updates: on'`)

	// Keys: pages, the status filter, and an API error shown with its code.
	rows := `document.querySelectorAll('#keys-table tbody tr').length`
	do(t, ctx, "keys, first page",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
		chromedp.WaitVisible(chromedp.CSS(`#keys-table tr[data-status=active]`)),
		choose("keys-status", "all"),
		chromedp.WaitVisible(chromedp.ID("keys-more")),
	)
	if n := eval[int](t, ctx, rows); n != 20 {
		t.Fatalf("%d keys on the first page, want 20", n)
	}
	do(t, ctx, "load more", chromedp.Click(chromedp.ID("keys-more")), chromedp.WaitNotVisible(chromedp.ID("keys-more")))
	if n := eval[int](t, ctx, rows); n != 22 {
		t.Fatalf("%d keys after Load more, want 22", n)
	}
	do(t, ctx, "only active", choose("keys-status", "active"))
	waitFor(t, ctx, "one active key", rows+` === 1 && document.querySelector('#keys-table tbody tr').dataset.status === 'active'`)
	do(t, ctx, "a second active key on the free tier",
		openCreateForm,
		chromedp.SendKeys(chromedp.ID("create-name"), "one too many"),
		chromedp.Click(chromedp.CSS("#create-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("notice-text")),
	)
	if got := text(t, ctx, "#notice-text"); !strings.HasPrefix(got, "The free tier allows 1 active key per user") || !strings.HasSuffix(got, "(KEY_LIMIT_REACHED)") {
		t.Fatalf("notice %q, want the API's message and code", got)
	}

	// A 429 says when to retry, from Retry-After.
	describe := fmt.Sprintf(`import('./api.js').then(({ Client }) => new Client(%q, () => '', () => {}).get('/limited').then(() => 'no error', (err) => err.describe()))`, static.URL)
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](describe, chromedp.EvalAwaitPromise))
	if err != nil || !strings.HasPrefix(got, "Slow down. Try again in 30 s (at ") || !strings.HasSuffix(got, "(RATE_LIMITED)") {
		t.Fatalf("429 described as %q (%v)", got, err)
	}

	// A phone-sized screen: the keys page still reads without sideways scrolling of the page.
	do(t, ctx, "narrow screen",
		chromedp.EmulateViewport(390, 844),
		chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
		chromedp.WaitVisible(chromedp.CSS(`#keys-table tr[data-status=active]`)),
	)
	if eval[bool](t, ctx, `document.documentElement.scrollWidth > window.innerWidth`) {
		t.Error("the page is wider than a 390 px screen")
	}

	// The same page from an origin keyhub does not list: the browser
	// refuses keyhub's answers.
	other := httptest.NewServer(pageFiles)
	defer other.Close()
	do(t, ctx, "sign in from an unlisted origin",
		chromedp.Navigate(other.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("dev-email")),
		chromedp.Click(chromedp.CSS("#dev-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("notice-text")),
	)
	if got := text(t, ctx, "#notice-text"); !strings.Contains(got, "could not be reached") {
		t.Fatalf("notice %q, want the sign-in service unreachable", got)
	}
}

// fakeSupabaseAuth stands in for a Supabase project's Auth REST API (a
// service outside keyhub): the password and refresh-token grants and
// logout, answering with tokens keyhub verifies through its JWKS.
type fakeSupabaseAuth struct {
	env       *apitest.Env
	anonKey   string
	mu        sync.Mutex
	refreshes int
	logouts   int
}

func (f *fakeSupabaseAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("apikey") != f.anonKey {
		http.Error(w, `{"error_code":"no_api_key","msg":"No API key found in request"}`, http.StatusUnauthorized)
		return
	}
	var body struct {
		Email        string `json:"email"`
		Password     string `json:"password"`
		RefreshToken string `json:"refresh_token"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.URL.Path == "/auth/v1/logout":
		f.logouts++
		w.WriteHeader(http.StatusNoContent)
		return
	case r.URL.Path != "/auth/v1/token":
		http.NotFound(w, r)
		return
	case r.URL.Query().Get("grant_type") == "password" && body.Password != "correct horse":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid_grant","error_description":"Invalid login credentials"}`))
		return
	case r.URL.Query().Get("grant_type") == "refresh_token":
		if body.RefreshToken != fmt.Sprintf("refresh-%d", f.refreshes) {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		f.refreshes++
		body.Email = "sam@example.com"
	}
	token, err := f.env.Issuer.Token(f.env.TokenIssuer, body.Email, time.Hour)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	// expires_in 61 s: the page renews a minute before expiry, so at once.
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": token, "token_type": "bearer", "expires_in": 61,
		"refresh_token": fmt.Sprintf("refresh-%d", f.refreshes), "user": map[string]string{"email": body.Email},
	})
}

// TestDashboardSupabaseSignIn: email and password against Supabase Auth
// (with the anon key), the session renewed with its refresh token before
// it expires, and sign-out.
func TestDashboardSupabaseSignIn(t *testing.T) {
	t.Parallel()
	supabase := httptest.NewUnstartedServer(nil)
	defer supabase.Close()
	const anonKey = "anon-key-for-tests"
	env := apitest.New(t, map[string]string{"SUPABASE_URL": "http://" + supabase.Listener.Addr().String(), "SUPABASE_ANON_KEY": anonKey})
	fake := &fakeSupabaseAuth{env: env, anonKey: anonKey}
	supabase.Config.Handler = cors.Handler(cors.Options{
		AllowedOrigins: []string{env.URL},
		AllowedMethods: []string{http.MethodPost},
		AllowedHeaders: []string{"apikey", "Authorization", "Content-Type"},
	})(fake)
	supabase.Start()

	ctx := tab(t)
	do(t, ctx, "wrong password",
		chromedp.Navigate(env.URL+"/dashboard/"),
		chromedp.WaitVisible(chromedp.ID("sb-email")),
		chromedp.SendKeys(chromedp.ID("sb-email"), "sam@example.com"),
		chromedp.SendKeys(chromedp.ID("sb-password"), "wrong"),
		chromedp.Click(chromedp.CSS("#supabase-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("notice-text")),
	)
	if got := text(t, ctx, "#notice-text"); !strings.Contains(got, "Invalid login credentials") {
		t.Fatalf("notice %q", got)
	}
	if eval[bool](t, ctx, `document.getElementById('dev-form').checkVisibility()`) {
		t.Fatal("dev sign-in offered outside dev mode")
	}
	do(t, ctx, "sign in",
		chromedp.SetValue(chromedp.ID("sb-password"), "correct horse"),
		chromedp.Click(chromedp.CSS("#supabase-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#me-details dd")),
	)
	if got := text(t, ctx, "#me-details"); !strings.Contains(got, "sam@example.com") {
		t.Fatalf("who am I shows %q", got)
	}
	if eval[string](t, ctx, `document.getElementById('sb-password').value`) != "" {
		t.Error("the password stays in the form after sign-in")
	}
	waitFor(t, ctx, "renewed with the refresh token", `JSON.parse(sessionStorage.getItem('keyhub.session')).refresh_token === 'refresh-1'`)
	do(t, ctx, "still signed in",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
		chromedp.WaitVisible(chromedp.CSS(`#keys-empty`)),
		chromedp.Click(chromedp.ID("sign-out")),
		chromedp.WaitVisible(chromedp.ID("sb-email")),
	)
	if eval[bool](t, ctx, `sessionStorage.getItem('keyhub.session') !== null`) {
		t.Error("the session outlives sign-out")
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.logouts != 1 {
		t.Errorf("%d logouts at Supabase, want 1", fake.logouts)
	}
}

// The scope picker offers the server's product scopes (PRODUCT_SCOPES)
// beside keyhub's own, and a key gets exactly the boxes left checked.
func TestDashboardProductScopes(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, map[string]string{"PRODUCT_SCOPES": "app:read,app:write"})
	ctx := tab(t)
	signIn(t, ctx, env.URL+"/", "scopes@example.com")
	do(t, ctx, "create a key with app:read only",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
		// Open once the key list has loaded (no key yet), like every
		// other test waits: the boxes alone can show before.
		chromedp.WaitVisible(chromedp.CSS("#create-panel[open] #create-name")),
		chromedp.WaitVisible(chromedp.CSS(`#create-form input[name=scopes][value="app:write"]`)),
		chromedp.SendKeys(chromedp.ID("create-name"), "product"),
		chromedp.Click(chromedp.CSS(`#create-form input[name=scopes][value="app:write"]`)),
		chromedp.Click(chromedp.CSS(`#create-form input[name=scopes][value="keys:write"]`)),
		chromedp.Click(chromedp.CSS("#create-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("secret-value")),
	)
	secret := eval[string](t, ctx, `document.getElementById('secret-value').value`)
	var me api.Me
	env.Get(t, "/v1/me", secret).Want(t, http.StatusOK, "").JSON(t, &me)
	if want := []string{"keys:read", "events:read", "ws:connect", "app:read"}; !slices.Equal(me.Scopes, want) {
		t.Fatalf("the key holds %v, want %v", me.Scopes, want)
	}
	// The picker lists each scope once, however often the page is shown.
	do(t, ctx, "show the keys page again",
		closeUncopiedSecret,
		chromedp.Click(chromedp.CSS(`#nav a[data-page=me]`)),
		chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
		chromedp.WaitVisible(chromedp.CSS(`#keys-table tr[data-status=active]`)),
	)
	if n := eval[int](t, ctx, `document.querySelectorAll('#create-form input[name=scopes]').length`); n != 6 {
		t.Fatalf("the picker has %d boxes, want 6", n)
	}
}
