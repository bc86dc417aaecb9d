package dashboard_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/internal/apitest"
)

// TestDashboardKeyList: active keys by default, counts, search by name or
// prefix, sort, times in words ("in 20 h", "never used") and a key close
// to its expiry highlighted.
func TestDashboardKeyList(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, nil)
	token := env.Token(t, "ola@example.com")
	setTier(t, env, token, "pro")
	var alpha, beta, gamma struct{ ID, Prefix string }
	env.Post(t, "/v1/keys", token, map[string]any{"name": "gamma"}).Want(t, http.StatusCreated, "").JSON(t, &gamma)
	env.Delete(t, "/v1/keys/"+gamma.ID, token).Want(t, http.StatusOK, "")
	env.Post(t, "/v1/keys", token, map[string]any{"name": "beta"}).Want(t, http.StatusCreated, "").JSON(t, &beta)
	env.Post(t, "/v1/keys", token, map[string]any{"name": "alpha", "expires_in": 20*3600 + 1800}).Want(t, http.StatusCreated, "").JSON(t, &alpha)

	ctx := tab(t)
	signIn(t, ctx, env.URL+"/dashboard/", "ola@example.com")
	do(t, ctx, "keys",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
		chromedp.WaitVisible(chromedp.CSS(`#keys-table tr[data-status=active]`)),
	)
	names := `[...document.querySelectorAll('#keys-table tbody tr')].map(r => r.cells[0].textContent).join(',')`
	if got := eval[string](t, ctx, names); got != "alpha,beta" {
		t.Errorf("listed %q by default, want the active keys, newest first", got)
	}
	if got := text(t, ctx, "#keys-count"); !strings.Contains(got, "2 active of 3 keys") {
		t.Errorf("count %q", got)
	}
	alphaRow := `#keys-table tr[data-key-id="` + alpha.ID + `"]`
	if got := text(t, ctx, alphaRow+` td:nth-child(6)`); !regexp.MustCompile(`^in 20 h$`).MatchString(got) {
		t.Errorf("alpha expires %q, want in 20 h", got)
	}
	if !eval[bool](t, ctx, `document.querySelector('`+alphaRow+`').classList.contains('expiring')`) {
		t.Error("a key expiring within a day is not highlighted")
	}
	if got := text(t, ctx, alphaRow+` td:nth-child(7)`); got != "never used" {
		t.Errorf("alpha last used %q", got)
	}
	if got := eval[string](t, ctx, `document.querySelector('`+alphaRow+` td:nth-child(6) time').title`); !strings.Contains(got, "20") {
		t.Errorf("the expiry's tooltip %q is not a date", got)
	}

	do(t, ctx, "search by name", chromedp.SendKeys(chromedp.ID("keys-search"), "alp"))
	waitFor(t, ctx, "alpha only", names+` === 'alpha'`)
	do(t, ctx, "search by prefix",
		clearSearch,
		chromedp.SendKeys(chromedp.ID("keys-search"), beta.Prefix[3:]),
	)
	waitFor(t, ctx, "beta only", names+` === 'beta'`)
	do(t, ctx, "all keys by name",
		clearSearch,
		choose("keys-status", "all"),
		choose("keys-sort", "name"),
	)
	waitFor(t, ctx, "sorted by name", names+` === 'alpha,beta,gamma'`)
}

// clearSearch empties the key search as a user would (with its input event).
var clearSearch = chromedp.Evaluate[chromedp.Void](`(s => { s.value = ''; s.dispatchEvent(new Event('input')); })(document.getElementById('keys-search'))`)

// TestDashboardKeyPage: a key's own page shows its details, where its
// open connections come from and its history; revoking a key in use asks
// for its name; rows copy prefix and id; the secret dialog offers an
// export line and a curl line.
func TestDashboardKeyPage(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, nil)
	ctx := tab(t)
	signIn(t, ctx, env.URL+"/dashboard/", "pia@example.com")
	do(t, ctx, "create a key",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
		chromedp.WaitVisible(chromedp.CSS("#create-panel[open] #create-name")),
		chromedp.SendKeys(chromedp.ID("create-name"), "daemon"),
		chromedp.Click(chromedp.ID("create-submit")),
		chromedp.WaitVisible(chromedp.ID("secret-value")),
	)
	secret := eval[string](t, ctx, `document.getElementById('secret-value').value`)
	if got := eval[string](t, ctx, `document.getElementById('secret-export').value`); got != "export KEYHUB_API_KEY="+secret {
		t.Errorf("export line %q", got)
	}
	if got := eval[string](t, ctx, `document.getElementById('secret-curl').value`); got != `curl -H "Authorization: Bearer $KEYHUB_API_KEY" `+env.URL+`/v1/me` {
		t.Errorf("curl line %q", got)
	}
	// The copy is asynchronous: Done before it finished would (rightly)
	// warn that nothing was copied.
	do(t, ctx, "copy the export line", chromedp.Click(chromedp.ID("secret-copy-export")))
	waitFor(t, ctx, "the export line copied", `document.getElementById('secret-copied').textContent.includes('Copied')`)
	do(t, ctx, "close",
		chromedp.Click(chromedp.ID("secret-done")),
		chromedp.WaitNotVisible(chromedp.ID("secret-dialog")),
	)
	var list struct{ Data []struct{ ID, Prefix string } }
	env.Get(t, "/v1/keys", secret).Want(t, http.StatusOK, "").JSON(t, &list)
	key := list.Data[0]

	do(t, ctx, "copy the prefix", chromedp.Click(chromedp.CSS(`#keys-table tr[data-key-id="`+key.ID+`"] button.copy`)))
	waitFor(t, ctx, "copied", `document.getElementById('notice-text').textContent === 'Prefix copied to the clipboard.'`)
	// A browser that refuses both the Clipboard API and copying the
	// selection: the page must not claim a copy, and shows the value.
	eval[bool](t, ctx, `navigator.clipboard.writeText = () => Promise.reject(new Error('denied')); document.execCommand = () => false; true`)
	do(t, ctx, "copy the id, refused", chromedp.Click(chromedp.CSS(`#keys-table tr[data-key-id="`+key.ID+`"] button.copy[data-copy="`+key.ID+`"]`)))
	waitFor(t, ctx, "not copied", `document.getElementById('notice-text').textContent.includes('could not be copied')`)
	if got := text(t, ctx, "#notice-text"); !strings.Contains(got, key.ID) {
		t.Errorf("a refused copy says %q, want the id shown", got)
	}
	if eval[bool](t, ctx, `document.querySelector('#keys-table tr[data-key-id="`+key.ID+`"] button.copy[data-copy="`+key.ID+`"]').textContent === 'Copied'`) {
		t.Error("a refused copy's button says Copied")
	}

	dialCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	daemon, _, err := websocket.Dial(dialCtx, "ws"+strings.TrimPrefix(env.URL, "http")+"/v1/ws?machine_id=m-1&hostname=build-07", &websocket.DialOptions{
		HTTPHeader: http.Header{"X-Api-Key": []string{secret}},
	})
	if err != nil {
		t.Fatalf("daemon dial: %v", err)
	}
	defer daemon.CloseNow()
	// The welcome comes once the connection is registered: the upgrade
	// answers before that, and a page read before it lists no connection.
	if _, _, err := daemon.Read(dialCtx); err != nil {
		t.Fatalf("daemon welcome: %v", err)
	}
	go func() {
		for {
			if _, _, err := daemon.Read(context.Background()); err != nil {
				return
			}
		}
	}()

	do(t, ctx, "the key's page",
		chromedp.Click(chromedp.CSS(`#keys-table tr[data-key-id="`+key.ID+`"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#key-history-table tr[data-type=created]`)),
	)
	if got := eval[string](t, ctx, `location.hash`); got != "#/keys/"+key.ID {
		t.Errorf("the key's page is at %q", got)
	}
	details := text(t, ctx, "#key-details")
	for _, want := range []string{key.Prefix, key.ID, "127.0.0.1"} {
		if !strings.Contains(details, want) {
			t.Errorf("details %q lack %q", details, want)
		}
	}
	if got := text(t, ctx, "#key-connections-table tbody"); !strings.Contains(got, "build-07") {
		t.Errorf("open connections %q, want build-07", got)
	}

	do(t, ctx, "revoke a key in use",
		chromedp.Click(chromedp.CSS(`#key-actions button.revoke`)),
		chromedp.WaitVisible(chromedp.ID("confirm-type")),
	)
	if !eval[bool](t, ctx, `document.getElementById('confirm-yes').disabled`) {
		t.Error("a key with an open connection can be revoked without typing its name")
	}
	if got := text(t, ctx, "#confirm-text"); !strings.Contains(got, "1 open connection will be closed") {
		t.Errorf("the dialog says %q", got)
	}
	do(t, ctx, "type the name and revoke",
		chromedp.SendKeys(chromedp.ID("confirm-type"), "daemon"),
		chromedp.WaitEnabled(chromedp.ID("confirm-yes")),
		chromedp.Click(chromedp.ID("confirm-yes")),
		chromedp.WaitVisible(chromedp.CSS(`#key-details .status.revoked`)),
	)
	env.Get(t, "/v1/me", secret).Want(t, http.StatusUnauthorized, "KEY_REVOKED")
}

// TestDashboardExpiryChoices: refresh offers grace presets (none, 1 h,
// 24 h) besides seconds, and create an expiry date of one's choosing.
func TestDashboardExpiryChoices(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, nil)
	token := env.Token(t, "quinn@example.com")
	setTier(t, env, token, "pro")
	var old struct{ ID string }
	env.Post(t, "/v1/keys", token, map[string]any{"name": "rotating"}).Want(t, http.StatusCreated, "").JSON(t, &old)

	ctx := tab(t)
	signIn(t, ctx, env.URL+"/dashboard/", "quinn@example.com")
	do(t, ctx, "refresh with a grace of 1 h",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
		chromedp.Click(chromedp.CSS(`#keys-table tr[data-key-id="`+old.ID+`"] button.refresh`)),
		chromedp.WaitVisible(chromedp.ID("refresh-confirm")),
		chromedp.Click(chromedp.CSS(`#refresh-form input[name=grace][value="3600"]`)),
		chromedp.Click(chromedp.ID("refresh-confirm")),
		chromedp.WaitVisible(chromedp.ID("secret-value")),
		closeUncopiedSecret,
	)
	var oldKey struct {
		ExpiresAt *time.Time `json:"expires_at"`
	}
	env.Get(t, "/v1/keys/"+old.ID, token).Want(t, http.StatusOK, "").JSON(t, &oldKey)
	if oldKey.ExpiresAt == nil || time.Until(*oldKey.ExpiresAt) < 55*time.Minute || time.Until(*oldKey.ExpiresAt) > time.Hour {
		t.Errorf("the old key expires at %v, want in 1 h", oldKey.ExpiresAt)
	}

	day := time.Now().AddDate(0, 2, 0).Format("2006-01-02")
	do(t, ctx, "create with an expiry date",
		openCreateForm,
		chromedp.SendKeys(chromedp.ID("create-name"), "dated"),
		choose("create-expiry", "date"),
		chromedp.WaitVisible(chromedp.ID("create-date")),
		chromedp.SetValue(chromedp.ID("create-date"), day),
		chromedp.Click(chromedp.ID("create-submit")),
		chromedp.WaitVisible(chromedp.ID("secret-value")),
		closeUncopiedSecret,
	)
	want := eval[string](t, ctx, `new Date('`+day+`T00:00:00').toISOString()`)
	var list struct {
		Data []struct {
			Name      string
			ExpiresAt *time.Time `json:"expires_at"`
		}
	}
	env.Get(t, "/v1/keys", token).Want(t, http.StatusOK, "").JSON(t, &list)
	if list.Data[0].Name != "dated" || list.Data[0].ExpiresAt == nil || list.Data[0].ExpiresAt.UTC().Format(time.RFC3339) != strings.Replace(want, ".000Z", "Z", 1) {
		t.Errorf("the dated key: %+v, want expiry %s", list.Data[0], want)
	}
}
