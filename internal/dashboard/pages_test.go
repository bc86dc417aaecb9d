package dashboard_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/dashboard"
)

// TestDashboardRevokeKeepsPlace: revoking a key shown after Load more
// keeps the list as it was (it went back to the first page, scrolled
// away, with keyboard focus dropped to <body>) and focus on the key's row.
func TestDashboardRevokeKeepsPlace(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, map[string]string{"KEY_CREATE_BURST": "100"}) // 25 keys, two pages
	token := env.Token(t, "ivy@example.com")
	setTier(t, env, token, "team")
	for i := range 25 {
		env.Post(t, "/v1/keys", token, map[string]any{"name": fmt.Sprintf("svc-%02d", i)}).Want(t, http.StatusCreated, "")
	}
	ctx := tab(t)
	do(t, ctx, "a short screen", chromedp.EmulateViewport(1366, 768))
	signIn(t, ctx, env.URL+"/dashboard/", "ivy@example.com")
	do(t, ctx, "keys, two pages",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
		chromedp.WaitVisible(chromedp.ID("keys-more")),
		chromedp.Click(chromedp.ID("keys-more")),
		chromedp.WaitNotVisible(chromedp.ID("keys-more")),
	)
	row := `#keys-table tbody tr:nth-child(23)`
	id := eval[string](t, ctx, `document.querySelector('`+row+`').dataset.keyId`)
	do(t, ctx, "revoke a key of the second page",
		chromedp.Click(chromedp.CSS(row+` button.revoke`)),
		chromedp.WaitVisible(chromedp.ID("confirm-yes")),
		chromedp.Click(chromedp.ID("confirm-yes")),
		chromedp.WaitVisible(chromedp.CSS(`#keys-table tr[data-key-id="`+id+`"][data-status=revoked]`)),
	)
	if n := rowCount(t, ctx, "keys-table"); n != 25 {
		t.Errorf("%d rows after the revoke, want the 25 shown before", n)
	}
	focus := `(() => { const a = document.activeElement; const r = a && a.closest('tr'); return r ? r.dataset.keyId : a.tagName; })()`
	waitFor(t, ctx, "focus on the revoked key's row", focus+` === '`+id+`'`)
	if where := eval[string](t, ctx, `(() => { const r = document.querySelector('#keys-table tr[data-key-id="`+id+`"]').getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight ? 'in sight' : r.top + ' ' + r.bottom + ' scrollY ' + scrollY + ' of ' + document.documentElement.scrollHeight; })()`); where != "in sight" {
		t.Errorf("the revoked key's row is scrolled out of sight: %s", where)
	}
}

// TestDashboardLoadingAndOffline: a page says it is loading while its
// request runs (only app start did), and a network failure says so in
// plain words with a way to retry (it named ALLOWED_ORIGINS).
func TestDashboardLoadingAndOffline(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, nil)
	slow := newSlowNetwork(t, env)
	ctx := tab(t)
	signIn(t, ctx, slow.URL+"/dashboard/", "jo@example.com")

	slow.Hold(request(http.MethodGet, "/v1/keys"))
	do(t, ctx, "keys", chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)))
	slow.waitHeld(t, 1)
	waitFor(t, ctx, "loading shown", `document.getElementById('keys-state').textContent === 'Loading your keys…'`)
	if !eval[bool](t, ctx, `document.getElementById('page-keys').getAttribute('aria-busy') === 'true'`) {
		t.Error("the keys page is not marked busy while it loads")
	}
	slow.Release()
	do(t, ctx, "loaded", chromedp.WaitVisible(chromedp.ID("keys-empty")))
	if got := text(t, ctx, "#keys-state"); got != "" {
		t.Errorf("the status line says %q after loading", got)
	}

	slow.SetDown(true)
	do(t, ctx, "offline",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=me]`)),
		chromedp.WaitVisible(chromedp.CSS(`#me-state button.retry`)),
	)
	got := text(t, ctx, "#me-state")
	if !strings.Contains(got, "Cannot reach keyhub") || strings.Contains(got, "ALLOWED_ORIGINS") || strings.Contains(got, "NETWORK_ERROR") {
		t.Errorf("offline, the page says %q", got)
	}
	slow.SetDown(false)
	do(t, ctx, "retry",
		chromedp.Click(chromedp.CSS(`#me-state button.retry`)),
		chromedp.WaitVisible(chromedp.CSS(`#me-details dd`)),
		chromedp.WaitNotVisible(chromedp.ID("me-state")),
	)
}

// TestDashboardMessages: a 429 says when to retry once (the API's message
// and the page both said it); the form asks for a scope itself instead of
// showing the API's "scopes must not be empty".
func TestDashboardMessages(t *testing.T) {
	t.Parallel()
	// The page comes from a server of its own, with what a rate-limited API
	// answers at /limited on the same origin (the CSP allows no other).
	static := httptest.NewUnstartedServer(nil)
	t.Cleanup(static.Close)
	origin := "http://" + static.Listener.Addr().String()
	env := apitest.NewDev(t, map[string]string{"ALLOWED_ORIGINS": origin})
	pageFiles := dashboard.Handler(dashboard.Config{APIURL: env.URL, DevSignIn: true})
	static.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/limited" {
			pageFiles.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte(`{"error":{"code":"RATE_LIMITED","message":"too many requests: retry in 1 s"}}`))
	})
	static.Start()
	api := static.URL
	token := env.Token(t, "kim@example.com")

	ctx := tab(t)
	signIn(t, ctx, static.URL+"/", "kim@example.com")
	describe := fmt.Sprintf(`import('./api.js').then(({ Client }) => new Client(%q, () => '', () => {}).get('/limited').then(() => 'no error', (err) => err.describe()))`, api)
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](describe, chromedp.EvalAwaitPromise))
	if err != nil || got != "Too many requests: retry in 1 s. (RATE_LIMITED)" {
		t.Errorf("429 described as %q (%v), want the retry said once", got, err)
	}

	do(t, ctx, "create without scopes",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
		chromedp.WaitVisible(chromedp.CSS("#create-panel[open] #create-name")),
		chromedp.SendKeys(chromedp.ID("create-name"), "nothing"),
		chromedp.Evaluate[chromedp.Void](`document.querySelectorAll('#create-form input[name=scopes]').forEach(b => { b.checked = false; })`),
		chromedp.Click(chromedp.ID("create-submit")),
		chromedp.WaitVisible(chromedp.ID("scopes-error")),
	)
	if eval[bool](t, ctx, `document.getElementById('notice').checkVisibility()`) {
		t.Errorf("notice %q beside the form's own message", text(t, ctx, "#notice-text"))
	}
	if n := keyCount(t, env, token, "all"); n != 0 {
		t.Errorf("%d keys made without a scope", n)
	}
}

// TestDashboardDialogs: the revoke confirmation has a title and a button
// that says what it does, opens on Cancel (it opened on the destructive
// button, and Cancel looked primary); Refresh and Cancel look different;
// an expired key offers no Revoke.
func TestDashboardDialogs(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, nil)
	token := env.Token(t, "lou@example.com")
	setTier(t, env, token, "pro")
	var lapsed, live struct{ ID string }
	env.Post(t, "/v1/keys", token, map[string]any{"name": "lapsed"}).Want(t, http.StatusCreated, "").JSON(t, &lapsed)
	env.Post(t, "/v1/keys", token, map[string]any{"name": "live"}).Want(t, http.StatusCreated, "").JSON(t, &live)
	expireKey(t, env, lapsed.ID)

	ctx := tab(t)
	signIn(t, ctx, env.URL+"/dashboard/", "lou@example.com")
	do(t, ctx, "keys",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
		chromedp.WaitVisible(chromedp.CSS(`#keys-table tr[data-status=active]`)),
		choose("keys-status", "all"),
		chromedp.WaitVisible(chromedp.CSS(`#keys-table tr[data-status=expired]`)),
	)
	if n := eval[int](t, ctx, `document.querySelectorAll('#keys-table tr[data-status=expired] button').length - document.querySelectorAll('#keys-table tr[data-status=expired] button.copy').length`); n != 0 {
		t.Errorf("an expired key offers %d actions", n)
	}

	liveRow := `#keys-table tr[data-key-id="` + live.ID + `"]`
	do(t, ctx, "revoke dialog",
		chromedp.Click(chromedp.CSS(liveRow+` button.revoke`)),
		chromedp.WaitVisible(chromedp.ID("confirm-yes")),
	)
	if got := text(t, ctx, "#confirm-title"); got != "Revoke live?" {
		t.Errorf("revoke dialog title %q", got)
	}
	if got := text(t, ctx, "#confirm-yes"); got != "Revoke key" {
		t.Errorf("the confirm button says %q", got)
	}
	if got := eval[string](t, ctx, `document.activeElement.id`); got != "confirm-cancel" {
		t.Errorf("the dialog opens on %q, want Cancel", got)
	}
	background := func(sel string) string {
		return eval[string](t, ctx, `getComputedStyle(document.querySelector('`+sel+`')).backgroundColor`)
	}
	if background("#confirm-cancel") == background("#confirm-yes") || background("#confirm-cancel") != background("#confirm-dialog") {
		t.Errorf("Cancel (%s) looks like the confirm button (%s), or not secondary", background("#confirm-cancel"), background("#confirm-yes"))
	}
	do(t, ctx, "cancel", chromedp.Click(chromedp.ID("confirm-cancel")), chromedp.WaitNotVisible(chromedp.ID("confirm-dialog")))

	do(t, ctx, "refresh dialog",
		chromedp.Click(chromedp.CSS(liveRow+` button.refresh`)),
		chromedp.WaitVisible(chromedp.ID("refresh-confirm")),
	)
	if background("#refresh-dialog button[value=cancel]") == background("#refresh-confirm") {
		t.Error("Refresh and Cancel look the same")
	}
}

// TestDashboardPhone: at 390×844 every row's actions are on the screen
// (the keys table was 834 px wide), the list is above the fold (the create
// form pushed it below), a long user agent does not make a row tall, and
// the focus ring stands out from the cards (1.64:1; WCAG 1.4.11 asks 3:1).
func TestDashboardPhone(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, nil)
	token := env.Token(t, "max@example.com")
	setTier(t, env, token, "pro")
	longAgent := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " + strings.Repeat("SomeEmbeddedBrowser/1.2.3 ", 12)
	for _, name := range []string{"phone", "tablet", "watch with a rather long name for a key"} {
		env.Do(t, apitest.Request{Method: http.MethodPost, Path: "/v1/keys", Cred: token, Body: map[string]any{"name": name}, Headers: map[string]string{"User-Agent": longAgent}}).Want(t, http.StatusCreated, "")
	}

	ctx := tab(t)
	do(t, ctx, "phone screen", chromedp.EmulateViewport(390, 844))
	signIn(t, ctx, env.URL+"/dashboard/", "max@example.com")
	do(t, ctx, "keys",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
		chromedp.WaitVisible(chromedp.CSS(`#keys-table tr[data-status=active]`)),
	)
	offScreen := `[...document.querySelectorAll('#keys-table button:not(.copy)')].filter(b => b.checkVisibility() && b.getBoundingClientRect().right > innerWidth).length`
	if n := eval[int](t, ctx, offScreen); n != 0 {
		t.Errorf("%d key actions are off the right of the screen", n)
	}
	if eval[bool](t, ctx, `(w => w.scrollWidth > w.clientWidth)(document.querySelector('#keys-table').parentElement)`) {
		t.Error("the keys table scrolls sideways")
	}
	if eval[bool](t, ctx, `document.querySelector('#keys-table tbody tr').getBoundingClientRect().top > innerHeight`) {
		t.Error("the key list starts below the fold")
	}

	// The focus ring against the card it sits on.
	do(t, ctx, "focus a field", chromedp.Click(chromedp.ID("keys-search")))
	ratio := eval[float64](t, ctx, contrastJS+`contrast(getComputedStyle(document.activeElement).outlineColor, getComputedStyle(document.getElementById('page-keys')).backgroundColor)`)
	if ratio < 3 {
		t.Errorf("focus ring contrast %.2f:1 against the card, want 3:1", ratio)
	}

	do(t, ctx, "events",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=events]`)),
		chromedp.WaitVisible(chromedp.CSS(`#events-table tr[data-type=created]`)),
	)
	// Judged against the table's own line height, not pixels: the fonts a
	// machine has decide how many pixels a line takes (a bound of 100 px
	// passed with DejaVu and failed with another font at 119 px).
	rows := eval[[]float64](t, ctx, `[...document.querySelectorAll('#events-table tbody tr')].map(r => r.getBoundingClientRect().height)`)
	line := eval[float64](t, ctx, `(c => { const s = getComputedStyle(c); return parseFloat(s.lineHeight) || 1.2 * parseFloat(s.fontSize); })(document.querySelector('#events-table td'))`)
	if len(rows) != 3 {
		t.Fatalf("%d event rows, want 3", len(rows))
	}
	for i, h := range rows {
		if h > 3.5*line {
			t.Errorf("event row %d is %.0f px tall: %.1f lines of %.1f px (a long name or user agent must take at most two)", i, h, h/line, line)
		}
	}
}

// contrastJS defines contrast(a, b): the WCAG contrast ratio of two CSS
// rgb() colours.
const contrastJS = `function contrast(a, b) {
	const lum = (c) => { const [r, g, b] = c.match(/[\d.]+/g).slice(0, 3).map(Number).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
	const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
	return (x + 0.05) / (y + 0.05);
}
`

// TestDashboardSessionEnds: a session that cannot renew itself warns
// before it ends (it ended without a word, losing what was typed), and
// signing in again leads back to the page, with what was typed (it led to
// "who am I").
func TestDashboardSessionEnds(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, map[string]string{"JWT_LEEWAY": "1ms"})
	ctx := tab(t)
	do(t, ctx, "the sign-in page",
		chromedp.Navigate(env.URL+"/dashboard/"),
		chromedp.WaitVisible(chromedp.ID("dev-email")),
	)
	// The token ends in 20 s (long enough for the page to load its keys
	// with it on a loaded machine; minted once the browser is up); the page
	// believes in 4 min, so it warns now and learns of the end from the
	// API's 401.
	short, err := env.Issuer.Token(env.TokenIssuer, "ned@example.com", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	do(t, ctx, "a session that ends soon",
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`sessionStorage.setItem('keyhub.session', JSON.stringify({kind:'dev', email:'ned@example.com', access_token:%q, expires_at: Date.now()+240000}))`, short)),
		chromedp.Navigate(env.URL+"/dashboard/#/keys"),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS("#create-panel[open] #create-name")),
		chromedp.WaitVisible(chromedp.ID("notice-action")),
	)
	// About 4 min remain; how the page rounds them depends on when it looked.
	if got := text(t, ctx, "#notice-text"); !strings.Contains(got, "Your session ends in 3 min") && !strings.Contains(got, "Your session ends in 4 min") {
		t.Errorf("notice %q, want a warning that the session ends", got)
	}
	if got := text(t, ctx, "#notice-action"); got != "Stay signed in" {
		t.Errorf("the warning offers %q", got)
	}
	do(t, ctx, "type", chromedp.SendKeys(chromedp.ID("create-name"), "half typed"))
	waitTokenEnded(t, env, short)
	do(t, ctx, "create after the session ended",
		chromedp.Click(chromedp.ID("create-submit")),
		chromedp.WaitVisible(chromedp.ID("dev-email")),
		chromedp.SetValue(chromedp.ID("dev-email"), "ned@example.com"),
		chromedp.Click(chromedp.CSS("#dev-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("create-name")),
	)
	if got := eval[string](t, ctx, `location.hash`); got != "#/keys" {
		t.Errorf("signed in again on %q, want #/keys", got)
	}
	if got := eval[string](t, ctx, `document.getElementById('create-name').value`); got != "half typed" {
		t.Errorf("the form holds %q after signing in again", got)
	}
}
