package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/internal/apitest"
)

// TestDashboardActionsRunOnce double-clicks every button that sends a
// request, on a network slow enough that the first request is still on its
// way: each sends one request, is disabled while it runs, and lists nothing
// twice (a double-clicked Create key made two keys and showed one secret;
// Load more listed the same 20 rows twice).
func TestDashboardActionsRunOnce(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, map[string]string{"KEY_CREATE_BURST": "100"}) // 22 keys, two pages
	slow := newSlowNetwork(t, env)
	token := env.Token(t, "dana@example.com")
	setTier(t, env, token, "team")
	for i := range 22 {
		env.Post(t, "/v1/keys", token, map[string]any{"name": fmt.Sprintf("svc-%02d", i)}).Want(t, http.StatusCreated, "")
	}

	ctx := tab(t)
	signIn(t, ctx, slow.URL+"/dashboard/", "dana@example.com")
	do(t, ctx, "keys",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
		chromedp.WaitVisible(chromedp.ID("keys-more")),
	)

	// Load more: the page has every key, and shows each once.
	do(t, ctx, "double-click Load more", doubleClick("#keys-more"))
	do(t, ctx, "the last page", chromedp.WaitNotVisible(chromedp.ID("keys-more")))
	if n := eval[int](t, ctx, `new Set([...document.querySelectorAll('#keys-table tbody tr')].map(r => r.dataset.keyId)).size`); n != 22 || rowCount(t, ctx, "keys-table") != 22 {
		t.Errorf("%d keys listed after Load more (%d rows), want 22", n, rowCount(t, ctx, "keys-table"))
	}

	// Create key.
	slow.Hold(request(http.MethodPost, "/v1/keys"))
	do(t, ctx, "double-click Create key",
		openCreateForm,
		chromedp.SendKeys(chromedp.ID("create-name"), "once"),
		doubleClick("#create-submit"),
	)
	slow.waitHeld(t, 1)
	if !eval[bool](t, ctx, `document.getElementById('create-submit').disabled`) {
		t.Error("Create key is not disabled while its request runs")
	}
	slow.Release()
	do(t, ctx, "the secret",
		chromedp.WaitVisible(chromedp.ID("secret-value")),
		closeUncopiedSecret,
	)
	if n := slow.Held(); n != 1 {
		t.Errorf("a double-clicked Create key sent %d requests, want 1", n)
	}
	if n := keyCount(t, env, token, "active"); n != 23 {
		t.Errorf("%d active keys after one Create key, want 23", n)
	}

	// Revoke: the row's button is busy until the answer comes.
	row := `#keys-table tbody tr:first-child`
	waitFor(t, ctx, "the new key listed first", `document.querySelector('`+row+` td').textContent === 'once'`)
	slow.Hold(func(r *http.Request) bool { return r.Method == http.MethodDelete })
	do(t, ctx, "revoke",
		chromedp.Click(chromedp.CSS(row+` button.revoke`)),
		chromedp.WaitVisible(chromedp.ID("confirm-yes")),
		chromedp.Click(chromedp.ID("confirm-yes")),
	)
	slow.waitHeld(t, 1)
	if !eval[bool](t, ctx, `document.querySelector('`+row+` button.revoke').disabled`) {
		t.Error("Revoke is not disabled while its request runs")
	}
	slow.Release()
	do(t, ctx, "revoked", chromedp.WaitVisible(chromedp.CSS(`#keys-table tr[data-status=revoked]`)))

	// Audit events: 23 created and one revoked, over two pages.
	nextPage := func(r *http.Request) bool {
		return r.Method == http.MethodGet && r.URL.Path == "/v1/events" && r.URL.Query().Has("cursor")
	}
	do(t, ctx, "events",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=events]`)),
		chromedp.WaitVisible(chromedp.ID("events-more")),
	)
	slow.Hold(nextPage)
	do(t, ctx, "double-click Load more events", doubleClick("#events-more"))
	slow.waitHeld(t, 1)
	if !eval[bool](t, ctx, `document.getElementById('events-more').disabled`) {
		t.Error("Load more is not disabled while its request runs")
	}
	slow.Release()
	do(t, ctx, "the last page of events", chromedp.WaitNotVisible(chromedp.ID("events-more")))
	if n := slow.Held(); n != 1 {
		t.Errorf("a double-clicked Load more sent %d requests for events, want 1", n)
	}
	if n := rowCount(t, ctx, "events-table"); n != 24 {
		t.Errorf("%d events listed, want 24", n)
	}
}

// TestDashboardRefreshAndCloseRunOnce double-clicks Refresh (the row's
// button, then the dialog's) and Close on a connection (the row's, then
// the confirmation's), and Reload on the connections page, on a network
// slow enough that the first request is still on its way: each sends one
// request, and the row's button stays disabled until the answer comes, so
// a second try opens no second dialog (it would refresh or close twice).
func TestDashboardRefreshAndCloseRunOnce(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, nil)
	slow := newSlowNetwork(t, env)
	token := env.Token(t, "rhea@example.com")
	setTier(t, env, token, "team")
	var key, worker struct {
		ID, Prefix string
		Secret     string `json:"key"`
	}
	env.Post(t, "/v1/keys", token, map[string]any{"name": "daemon"}).Want(t, http.StatusCreated, "").JSON(t, &key)
	env.Post(t, "/v1/keys", token, map[string]any{"name": "worker"}).Want(t, http.StatusCreated, "").JSON(t, &worker)

	ctx := tab(t)
	signIn(t, ctx, slow.URL+"/dashboard/", "rhea@example.com")
	row := `#keys-table tr[data-key-id="` + key.ID + `"]`
	do(t, ctx, "keys",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
		chromedp.WaitVisible(chromedp.CSS(row+` button.refresh`)),
	)
	dialogOpen := func(id string) bool {
		t.Helper()
		return eval[bool](t, ctx, `document.getElementById('`+id+`').open`)
	}

	// Refresh.
	do(t, ctx, "double-click Refresh",
		doubleClick(row+` button.refresh`),
		chromedp.WaitVisible(chromedp.ID("refresh-confirm")),
	)
	slow.Hold(request(http.MethodPost, "/v1/keys/"+key.ID+"/refresh"))
	do(t, ctx, "double-click Refresh key", doubleClick("#refresh-confirm"))
	slow.waitHeld(t, 1)
	if !eval[bool](t, ctx, `document.querySelector('`+row+` button.refresh').disabled`) {
		t.Error("Refresh is not disabled while its request runs")
	}
	eval[bool](t, ctx, `document.querySelector('`+row+` button.refresh').click(), true`)
	if dialogOpen("refresh-dialog") {
		t.Error("Refresh opened its dialog again while its request runs")
	}
	slow.Release()
	do(t, ctx, "the new secret",
		chromedp.WaitVisible(chromedp.ID("secret-value")),
		closeUncopiedSecret,
	)
	if n := slow.Held(); n != 1 {
		t.Errorf("a double-clicked Refresh sent %d requests, want 1", n)
	}
	if n := keyCount(t, env, token, "all"); n != 3 {
		t.Errorf("%d keys after one refresh, want 3 (the old one, its successor, worker)", n)
	}

	// Close a connection.
	daemon, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(env.URL, "http")+"/v1/ws?machine_id=m-9", &websocket.DialOptions{
		HTTPHeader: http.Header{"X-Api-Key": []string{worker.Secret}},
	})
	if err != nil {
		t.Fatalf("daemon dial: %v", err)
	}
	defer daemon.CloseNow()
	if _, _, err := daemon.Read(context.Background()); err != nil { // the welcome: registered
		t.Fatalf("daemon welcome: %v", err)
	}
	closed := make(chan websocket.StatusCode, 1)
	go func() {
		for {
			if _, _, err := daemon.Read(context.Background()); err != nil {
				closed <- websocket.CloseStatus(err)
				return
			}
		}
	}()
	connRow := `#connections-table tr[data-key-prefix="` + worker.Prefix + `"]`
	do(t, ctx, "connections",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=connections]`)),
		chromedp.WaitVisible(chromedp.CSS(connRow+` button.close-connection`)),
	)
	slow.Hold(request(http.MethodGet, "/v1/ws/connections"))
	do(t, ctx, "double-click Reload", doubleClick("#connections-reload"))
	slow.waitHeld(t, 1)
	if !eval[bool](t, ctx, `document.getElementById('connections-reload').disabled`) {
		t.Error("Reload is not disabled while its request runs")
	}
	slow.Release()
	do(t, ctx, "reloaded", chromedp.WaitEnabled(chromedp.ID("connections-reload")), chromedp.WaitVisible(chromedp.CSS(connRow)))
	if n := slow.Held(); n != 1 {
		t.Errorf("a double-clicked Reload sent %d requests, want 1", n)
	}

	do(t, ctx, "double-click Close",
		doubleClick(connRow+` button.close-connection`),
		chromedp.WaitVisible(chromedp.ID("confirm-yes")),
	)
	slow.Hold(func(r *http.Request) bool {
		return r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/v1/ws/connections/")
	})
	do(t, ctx, "double-click Close connection", doubleClick("#confirm-yes"))
	slow.waitHeld(t, 1)
	if !eval[bool](t, ctx, `document.querySelector('`+connRow+` button.close-connection').disabled`) {
		t.Error("Close is not disabled while its request runs")
	}
	eval[bool](t, ctx, `document.querySelector('`+connRow+` button.close-connection').click(), true`)
	if dialogOpen("confirm-dialog") {
		t.Error("Close asked again while its request runs")
	}
	slow.Release()
	do(t, ctx, "closed", chromedp.WaitNotPresent(chromedp.CSS(connRow)))
	if n := slow.Held(); n != 1 {
		t.Errorf("a double-clicked Close sent %d requests, want 1", n)
	}
	select {
	case code := <-closed:
		if code != 4002 {
			t.Errorf("the daemon's socket closed with %d, want 4002", code)
		}
	case <-time.After(20 * time.Second): // a ceiling: the close comes at once
		t.Error("the daemon's socket is still open")
	}
}

// TestDashboardManyKeys: with more keys than one page of the API holds,
// the events page names every key and filters by any of them (the key
// list was read once with limit=100: older keys showed as bare UUIDs and
// could not be chosen).
func TestDashboardManyKeys(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, map[string]string{"KEY_CREATE_BURST": "1000"}) // 231 keys
	token := env.Token(t, "erin@example.com")
	setTier(t, env, token, "enterprise")
	var oldest struct{ ID, Prefix string }
	env.Post(t, "/v1/keys", token, map[string]any{"name": "the-oldest"}).Want(t, http.StatusCreated, "").JSON(t, &oldest)
	for i := range 230 {
		var k struct{ ID string }
		env.Post(t, "/v1/keys", token, map[string]any{"name": fmt.Sprintf("bulk-%03d", i)}).Want(t, http.StatusCreated, "").JSON(t, &k)
		env.Delete(t, "/v1/keys/"+k.ID, token).Want(t, http.StatusOK, "")
	}
	env.Delete(t, "/v1/keys/"+oldest.ID, token).Want(t, http.StatusOK, "")

	ctx := tab(t)
	signIn(t, ctx, env.URL+"/dashboard/", "erin@example.com")
	do(t, ctx, "events",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=events]`)),
		chromedp.WaitVisible(chromedp.CSS(`#events-table tr[data-type=revoked]`)),
	)
	want := "the-oldest (" + oldest.Prefix + ")"
	if got := text(t, ctx, `#events-table tbody tr:first-child td:nth-child(3)`); got != want {
		t.Errorf("the newest event names its key %q, want %q", got, want)
	}
	waitFor(t, ctx, "every key offered in the filter", `document.querySelectorAll('#events-key option').length === 232`)
	do(t, ctx, "filter by the oldest key",
		chromedp.SetValue(chromedp.ID("events-key"), oldest.ID),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('events-key').dispatchEvent(new Event('change'))`),
	)
	eventTypes := `[...document.querySelectorAll('#events-table tbody tr')].map(r => r.dataset.type).join(',')`
	waitFor(t, ctx, "the oldest key's events", eventTypes+` === 'revoked,created'`)
	if got := text(t, ctx, "#events-table tbody"); strings.Count(got, want) != 2 {
		t.Errorf("the oldest key's events read %q, want its name twice", got)
	}
}
