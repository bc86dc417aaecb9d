package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// TestDashboardKeyLastUse (issue 19 item 16): a key's page says when the
// key was last used, from which address and with which agent, for a key
// used over REST only (no open connection), as text however the agent
// reads, on one line of details that fits a phone; the open connections
// stay listed apart. A key never used says so.
func TestDashboardKeyLastUse(t *testing.T) {
	t.Parallel()
	// Uses reach the database when the test flushes them; the address is
	// the one the trusted proxy (this machine) forwards.
	env := apitest.NewDev(t, map[string]string{"LAST_USED_FLUSH_INTERVAL": "1h", "TRUSTED_PROXIES": "127.0.0.1/32"})
	token := env.Token(t, "lulu@example.com")
	setTier(t, env, token, "pro")
	var used, idle api.CreatedKey
	env.Post(t, "/v1/keys", token, map[string]any{"name": "used"}).Want(t, http.StatusCreated, "").JSON(t, &used)
	env.Post(t, "/v1/keys", token, map[string]any{"name": "idle"}).Want(t, http.StatusCreated, "").JSON(t, &idle)
	// An agent that would be markup if the page took it as HTML.
	const agent = `<img src=x class=injected> cron-runner/2.1 (linux; amd64)`
	env.Do(t, apitest.Request{Method: http.MethodGet, Path: "/v1/me", Cred: used.Secret,
		Headers: map[string]string{"X-Forwarded-For": "203.0.113.7", "User-Agent": agent}}).Want(t, http.StatusOK, "")
	flushCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := env.App.FlushUsage(flushCtx); err != nil {
		t.Fatal(err)
	}

	ctx := tab(t)
	signIn(t, ctx, env.URL+"/dashboard/", "lulu@example.com")
	do(t, ctx, "the used key's page",
		chromedp.Navigate(env.URL+"/dashboard/#/keys/"+used.ID.String()),
		chromedp.WaitVisible(chromedp.ID("key-last-use")),
	)
	// detail is the text of the details' value under a term.
	detail := func(term string) string {
		return eval[string](t, ctx, `(() => { const dt = [...document.querySelectorAll('#key-details dt')].find(d => d.textContent === `+fmt.Sprintf("%q", term)+`); return dt ? dt.nextElementSibling.innerText : '(no such term)'; })()`)
	}
	line := regexp.MustCompile(`^(just now|\d+ min ago) \(.+\) from 203\.0\.113\.7 with ` + regexp.QuoteMeta(agent) + `$`)
	if got := detail("Last used"); !line.MatchString(got) {
		t.Errorf("Last used says %q, want %v", got, line)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#key-details img, .injected').length`); n != 0 {
		t.Errorf("the agent became %d elements", n)
	}
	if got := detail("Connected from"); got != "no open connection" {
		t.Errorf("Connected from says %q for a key used over REST only", got)
	}
	for _, screen := range screens {
		do(t, ctx, screen.name, screen.emulate())
		checkAxe(t, ctx, screen.name+" key last use")
		if eval[bool](t, ctx, `document.documentElement.scrollWidth > window.innerWidth`) {
			t.Errorf("%s: the page is wider than the screen", screen.name)
		}
		// The line wraps inside its card: nothing cut off or scrolled, no
		// inline style to make it so.
		if eval[bool](t, ctx, `(e => e.scrollWidth > e.parentElement.clientWidth + 1)(document.getElementById('key-last-use'))`) {
			t.Errorf("%s: the last use is wider than its place", screen.name)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('#key-details [style]').length`); n != 0 {
			t.Errorf("%s: %d details carry an inline style", screen.name, n)
		}
	}

	do(t, ctx, "the idle key's page",
		chromedp.Navigate(env.URL+"/dashboard/#/keys/"+idle.ID.String()),
	)
	waitFor(t, ctx, "the idle key's details", `document.getElementById('key-title').textContent === 'idle' && !!document.querySelector('#key-details dt')`)
	if got := detail("Last used"); got != "never used" {
		t.Errorf("an unused key's Last used says %q", got)
	}
}
