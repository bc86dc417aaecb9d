package dashboard_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/internal/apitest"
)

// screens are the sizes every page and dialog is checked at: a laptop and
// a phone.
var screens = []screenSize{
	{"desktop", 1366, 768, false},
	{"phone", 390, 844, false},
	{"dark", 1366, 768, true}, // prefers-color-scheme: dark
}

// screenSize is a screen a page is checked on.
type screenSize struct {
	name          string
	width, height int64
	dark          bool
}

// emulate makes the tab's screen s: its size, and dark mode or not.
func (s screenSize) emulate() chromedp.Action[chromedp.Void] {
	media := emulation.SetEmulatedMediaParams{}
	if s.dark {
		media.Features = []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}
	}
	return chromedp.Steps(chromedp.EmulateViewport(s.width, s.height), chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, media)
		return err
	}))
}

// TestDashboardAccessibility opens every page and every dialog at both
// screen sizes, and on a desktop in dark mode, and runs axe-core on each
// (any violation fails, colour contrast included), checks the page never
// scrolls sideways, and saves the screenshots of the README.
func TestDashboardAccessibility(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, nil)
	token := env.Token(t, "ada@example.com")
	setTier(t, env, token, "team")
	var daemonKey struct {
		ID     string
		Prefix string
		Secret string `json:"key"`
	}
	env.Post(t, "/v1/keys", token, map[string]any{"name": "build server", "expires_in": 30 * 86400,
		"metadata": map[string]any{"team": "platform", "runbook": "https://wiki.example.com/build-server"}}).Want(t, http.StatusCreated, "").JSON(t, &daemonKey)
	var old struct{ ID string }
	env.Post(t, "/v1/keys", token, map[string]any{"name": "old laptop"}).Want(t, http.StatusCreated, "").JSON(t, &old)
	env.Delete(t, "/v1/keys/"+old.ID, token).Want(t, http.StatusOK, "")
	var lapsed struct{ ID string }
	env.Post(t, "/v1/keys", token, map[string]any{"name": "trial"}).Want(t, http.StatusCreated, "").JSON(t, &lapsed)
	expireKey(t, env, lapsed.ID)
	// A working day of the build server, for its usage chart: busy in
	// the afternoon, a few refusals and a burst over the rate limit.
	thisHour := time.Now().UTC().Truncate(time.Hour)
	for ago := range 24 {
		ok := 12 + (ago*7)%19
		if ago >= 4 && ago <= 9 {
			ok += 30
		}
		addUsage(t, env, daemonKey.ID, thisHour.Add(-time.Duration(ago)*time.Hour), ok, (ago%5)/4, map[int]int{6: 9, 7: 4}[ago])
	}
	sqlCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Made by a key: the pages name the user and the key.
	env.Post(t, "/v1/keys", daemonKey.Secret, map[string]any{"name": "ci runner", "scopes": []string{"keys:read"}}).Want(t, http.StatusCreated, "")

	daemon, _, err := websocket.Dial(sqlCtx, "ws"+strings.TrimPrefix(env.URL, "http")+"/v1/ws?machine_id=m-42&hostname=build-01", &websocket.DialOptions{
		HTTPHeader: http.Header{"X-Api-Key": []string{daemonKey.Secret}},
	})
	if err != nil {
		t.Fatalf("daemon dial: %v", err)
	}
	defer daemon.CloseNow()
	// Listed once the welcome comes (the upgrade answers before that).
	if _, _, err := daemon.Read(sqlCtx); err != nil {
		t.Fatalf("daemon welcome: %v", err)
	}
	go func() { // reads until closed, so the server never waits on it
		for {
			if _, _, err := daemon.Read(context.Background()); err != nil {
				return
			}
		}
	}()

	ctx := tab(t)
	for _, screen := range screens {
		check := func(what string) {
			t.Helper()
			checkAxe(t, ctx, screen.name+" "+what)
			if eval[bool](t, ctx, `document.documentElement.scrollWidth > window.innerWidth`) {
				t.Errorf("%s %s: the page is wider than the screen", screen.name, what)
			}
		}
		shot := func(name string) {
			t.Helper()
			if screen.name != "desktop" {
				name += "-" + screen.name
			}
			screenshot(t, ctx, name)
		}
		do(t, ctx, "screen", screen.emulate())
		do(t, ctx, "signed out",
			chromedp.Navigate(env.URL+"/dashboard/"),
			chromedp.Evaluate[chromedp.Void](`sessionStorage.clear()`),
			chromedp.Reload(),
			chromedp.WaitVisible(chromedp.ID("dev-email")),
		)
		if screen.dark {
			luminance := eval[float64](t, ctx, contrastJS+`contrast(getComputedStyle(document.documentElement).backgroundColor, 'rgb(0, 0, 0)')`)
			if luminance > 2 {
				t.Errorf("dark mode: the page background is light (%.1f:1 against black)", luminance)
			}
		}
		check("sign-in")
		shot("signin")
		signIn(t, ctx, env.URL+"/dashboard/", "ada@example.com")
		check("who am I")
		shot("whoami")

		do(t, ctx, "keys",
			chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
			chromedp.WaitVisible(chromedp.CSS(`#keys-table tr[data-status=active]`)),
			choose("keys-status", "all"),
			chromedp.WaitVisible(chromedp.CSS(`#keys-table tr[data-status=revoked]`)),
		)
		check("keys")
		shot("keys")

		do(t, ctx, "a key's page",
			chromedp.Click(chromedp.CSS(`#keys-table tr[data-key-id="`+daemonKey.ID+`"] a`)),
			chromedp.WaitVisible(chromedp.CSS(`#key-connections-table tbody tr`)),
			chromedp.WaitVisible(chromedp.CSS(`#key-history-table tr[data-type=created]`)),
			chromedp.WaitVisible(chromedp.CSS(`#key-usage-chart svg`)),
		)
		check("key page")
		shot("key")
		do(t, ctx, "back to the keys",
			chromedp.Click(chromedp.CSS(`#page-key .back a`)),
			chromedp.WaitVisible(chromedp.CSS(`#keys-table tr[data-status=active]`)),
			choose("keys-status", "all"),
			chromedp.WaitVisible(chromedp.CSS(`#keys-table tr[data-status=revoked]`)),
		)

		do(t, ctx, "refresh dialog",
			chromedp.Click(chromedp.CSS(`#keys-table tr[data-key-id="`+daemonKey.ID+`"] button.refresh`)),
			chromedp.WaitVisible(chromedp.ID("refresh-grace")),
		)
		check("refresh dialog")
		do(t, ctx, "cancel refresh",
			chromedp.Click(chromedp.CSS(`#refresh-dialog button[value=cancel]`)),
			chromedp.WaitNotVisible(chromedp.ID("refresh-dialog")),
		)
		do(t, ctx, "revoke dialog",
			chromedp.Click(chromedp.CSS(`#keys-table tr[data-key-id="`+daemonKey.ID+`"] button.revoke`)),
			chromedp.WaitVisible(chromedp.ID("confirm-yes")),
		)
		check("revoke dialog")
		do(t, ctx, "cancel revoke",
			chromedp.Click(chromedp.CSS(`#confirm-dialog button[value=cancel]`)),
			chromedp.WaitNotVisible(chromedp.ID("confirm-dialog")),
		)

		do(t, ctx, "create a key",
			openCreateForm,
			chromedp.SendKeys(chromedp.ID("create-name"), "laptop "+screen.name),
			chromedp.Click(chromedp.ID("create-submit")),
			chromedp.WaitVisible(chromedp.ID("secret-value")),
		)
		check("secret dialog")
		shot("keys-secret")
		do(t, ctx, "secret not copied", chromedp.Click(chromedp.ID("secret-done")), chromedp.WaitVisible(chromedp.ID("secret-not-copied")))
		check("secret dialog, not copied")
		do(t, ctx, "close the secret", chromedp.Click(chromedp.ID("secret-done")), chromedp.WaitNotVisible(chromedp.ID("secret-dialog")))

		do(t, ctx, "events",
			chromedp.Click(chromedp.CSS(`#nav a[data-page=events]`)),
			chromedp.WaitVisible(chromedp.CSS(`#events-table tr[data-type=revoked]`)),
		)
		waitFor(t, ctx, "live updates on", `document.getElementById('live-status').textContent === 'Live updates: on'`)
		check("events")
		shot("events")

		daemonRow := `#connections-table tr[data-key-prefix="` + daemonKey.Prefix + `"]`
		do(t, ctx, "connections",
			chromedp.Click(chromedp.CSS(`#nav a[data-page=connections]`)),
			chromedp.WaitVisible(chromedp.CSS(daemonRow)),
		)
		check("connections")
		shot("connections")
		do(t, ctx, "close dialog",
			chromedp.Click(chromedp.CSS(daemonRow+` button.close-connection`)),
			chromedp.WaitVisible(chromedp.ID("confirm-yes")),
		)
		check("close-connection dialog")
		do(t, ctx, "cancel close",
			chromedp.Click(chromedp.CSS(`#confirm-dialog button[value=cancel]`)),
			chromedp.WaitNotVisible(chromedp.ID("confirm-dialog")),
		)

		do(t, ctx, "settings",
			chromedp.Click(chromedp.CSS(`#nav a[data-page=settings]`)),
			chromedp.WaitVisible(chromedp.ID("policy-lifetime")),
		)
		waitFor(t, ctx, "the policy read", `document.querySelector('#policy-form input[name=leak]:checked') !== null`)
		check("settings")
		shot("settings")
	}
}
