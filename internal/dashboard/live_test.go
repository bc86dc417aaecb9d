package dashboard_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/keyhub/keyhub/internal/apitest"
)

const liveOn = `document.getElementById('live-status').textContent === 'Live updates: on'`

// TestDashboardLiveReconnects: live updates survive a server restart
// (they stayed "off (closed: 1001…)" until a reload): the page says it
// reconnects, does, and events made after the restart arrive live.
func TestDashboardLiveReconnects(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, nil)
	token := env.Token(t, "fay@example.com")
	var key struct{ ID string }
	env.Post(t, "/v1/keys", token, map[string]any{"name": "before"}).Want(t, http.StatusCreated, "").JSON(t, &key)

	ctx := tab(t)
	signIn(t, ctx, env.URL+"/dashboard/", "fay@example.com")
	do(t, ctx, "events",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=events]`)),
		chromedp.WaitVisible(chromedp.CSS(`#events-table tr[data-type=created]`)),
	)
	waitFor(t, ctx, "live updates on", liveOn)

	// Watch every status the line shows from now on.
	do(t, ctx, "record the status line", chromedp.Evaluate[chromedp.Void](`
		window.liveStatuses = [];
		new MutationObserver(() => window.liveStatuses.push(document.getElementById('live-status').textContent))
			.observe(document.getElementById('live-status'), { childList: true, characterData: true, subtree: true });`))
	env.Restart(t)
	waitFor(t, ctx, "live updates on again", `window.liveStatuses.length > 1 && `+liveOn)
	statuses := eval[string](t, ctx, `window.liveStatuses.join(' | ')`)
	if !strings.Contains(statuses, "the server is restarting") || !strings.Contains(statuses, "Reconnecting in") {
		t.Errorf("the status line said %q, want the restart and the reconnect in words", statuses)
	}
	env.Delete(t, "/v1/keys/"+key.ID, token).Want(t, http.StatusOK, "")
	do(t, ctx, "an event after the restart arrives live",
		chromedp.WaitVisible(chromedp.CSS(`#events-table tr[data-type=revoked][data-live=true]`)),
	)
}

// TestDashboardOwnSocket: the Connections page does not list the page's
// own socket, closing as the events page was left, with a Close button.
func TestDashboardOwnSocket(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, nil)
	ctx := tab(t)
	signIn(t, ctx, env.URL+"/dashboard/", "gil@example.com")
	do(t, ctx, "events", chromedp.Click(chromedp.CSS(`#nav a[data-page=events]`)))
	waitFor(t, ctx, "live updates on", liveOn)
	do(t, ctx, "connections",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=connections]`)),
		chromedp.WaitVisible(chromedp.ID("connections-empty")),
	)
	if n := rowCount(t, ctx, "connections-table"); n != 0 {
		t.Errorf("the page lists %d connections, want none (its own socket is not one to close)", n)
	}
}

// TestDashboardSecondTab: a second tab's live updates are refused by the
// tier's connection limit; the page says so in words (it said "closed:
// 1006") and takes over once the first tab lets go.
func TestDashboardSecondTab(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, nil)
	first := tab(t)
	signIn(t, first, env.URL+"/dashboard/", "hal@example.com")
	do(t, first, "events", chromedp.Click(chromedp.CSS(`#nav a[data-page=events]`)))
	waitFor(t, first, "live updates on", liveOn)

	second := tab(t)
	signIn(t, second, env.URL+"/dashboard/", "hal@example.com")
	do(t, second, "events", chromedp.Click(chromedp.CSS(`#nav a[data-page=events]`)))
	// The line changes as the tab retries: the words are checked as they show.
	waitFor(t, second, "the refusal explained in words", `document.getElementById('live-status').textContent.includes('free tier allows 1 live connection per user, and another tab or program is using it')`)

	do(t, first, "the first tab leaves the events page", chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)))
	waitFor(t, second, "the second tab takes over", liveOn)
}
