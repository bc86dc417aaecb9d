package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/internal/apitest"
)

// TestDashboardKeyControls: from the key list, Disable (after a
// confirmation) makes the key refused with KEY_DISABLED and Enable makes it
// work again; on the key's page, Edit renames it and sets its allowed
// networks (a bad network is said in the dialog, which keeps what was
// typed), and the key is then refused from elsewhere. axe-core checks the
// pages and the dialogs, the disable confirmation at every screen size.
func TestDashboardKeyControls(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, nil)
	token := env.Token(t, "quinn@example.com")
	var key struct{ ID, Key string }
	env.Post(t, "/v1/keys", token, map[string]any{"name": "daemon"}).Want(t, http.StatusCreated, "").JSON(t, &key)

	ctx := tab(t)
	signIn(t, ctx, env.URL+"/dashboard/", "quinn@example.com")
	row := `#keys-table tr[data-key-id="` + key.ID + `"]`
	do(t, ctx, "keys",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
		chromedp.WaitVisible(chromedp.CSS(row+`[data-disabled=no] button.disable`)),
	)
	do(t, ctx, "disable",
		chromedp.Click(chromedp.CSS(row+` button.disable`)),
		chromedp.WaitVisible(chromedp.ID("confirm-yes")),
	)
	for _, screen := range screens {
		do(t, ctx, screen.name, screen.emulate())
		checkAxe(t, ctx, screen.name+" disable confirmation")
		if eval[bool](t, ctx, `document.getElementById('confirm-dialog').scrollWidth > document.getElementById('confirm-dialog').clientWidth`) {
			t.Errorf("%s: the disable confirmation scrolls sideways", screen.name)
		}
	}
	do(t, ctx, "back to the desktop", screens[0].emulate())
	do(t, ctx, "confirm",
		chromedp.Click(chromedp.ID("confirm-yes")),
		chromedp.WaitVisible(chromedp.CSS(row+`[data-disabled=yes] button.enable`)),
	)
	if got := text(t, ctx, row+` .status`); got != "disabled" {
		t.Errorf("a disabled key's status reads %q", got)
	}
	checkAxe(t, ctx, "the keys page with a disabled key")
	env.Get(t, "/v1/me", key.Key).Want(t, http.StatusUnauthorized, "KEY_DISABLED")

	do(t, ctx, "enable",
		chromedp.Click(chromedp.CSS(row+` button.enable`)),
		chromedp.WaitVisible(chromedp.CSS(row+`[data-disabled=no] button.disable`)),
	)
	env.Get(t, "/v1/me", key.Key).Want(t, http.StatusOK, "")

	do(t, ctx, "the key's page",
		chromedp.Click(chromedp.CSS(row+` a`)),
		chromedp.WaitVisible(chromedp.CSS(`#key-actions button.edit`)),
		chromedp.Click(chromedp.CSS(`#key-actions button.edit`)),
		chromedp.WaitVisible(chromedp.ID("edit-name")),
	)
	checkAxe(t, ctx, "the edit dialog")
	do(t, ctx, "a bad network",
		chromedp.SetValue(chromedp.ID("edit-name"), "builder"),
		chromedp.SetValue(chromedp.ID("edit-cidrs"), "10.0.0.0/99"),
		chromedp.Click(chromedp.ID("edit-save")),
		chromedp.WaitVisible(chromedp.ID("edit-error")),
	)
	if got := text(t, ctx, "#edit-error"); !strings.Contains(got, "VALIDATION_FAILED") || !strings.Contains(got, "10.0.0.0/99") {
		t.Errorf("the dialog says %q", got)
	}
	if got := eval[string](t, ctx, `document.getElementById('edit-name').value`); got != "builder" {
		t.Errorf("what was typed is lost: name %q", got)
	}
	do(t, ctx, "save",
		chromedp.SetValue(chromedp.ID("edit-cidrs"), "203.0.113.7/24\n2001:db8::/32"),
		chromedp.Click(chromedp.ID("edit-save")),
		chromedp.WaitNotVisible(chromedp.ID("edit-dialog")),
	)
	waitFor(t, ctx, "renamed", `document.getElementById('key-title').textContent === 'builder'`)
	waitFor(t, ctx, "the networks shown", `document.getElementById('key-details').textContent.includes('203.0.113.0/24, 2001:db8::/32')`)
	waitFor(t, ctx, "the history", `document.querySelector('#key-history-table tr[data-type=updated]') !== null`)
	env.Get(t, "/v1/me", key.Key).Want(t, http.StatusForbidden, "IP_NOT_ALLOWED")
	var got struct {
		Name         string
		AllowedCIDRs []string `json:"allowed_cidrs"`
	}
	env.Get(t, "/v1/keys/"+key.ID, token).Want(t, http.StatusOK, "").JSON(t, &got)
	if got.Name != "builder" || strings.Join(got.AllowedCIDRs, " ") != "203.0.113.0/24 2001:db8::/32" {
		t.Errorf("the key after edit: %+v", got)
	}
}

// TestDashboardEditScopes (issue 19 item 16): the edit dialog offers the
// create form's scopes (product scopes included), checked as the key holds
// them; no scope at all is said in the dialog and nothing is sent; saving
// narrows the key (its page shows the new scopes, the key is refused what
// it lost); an error from the server (the key revoked meanwhile) is said
// in the dialog, which keeps the choice. axe-core checks the dialog at
// every screen size.
func TestDashboardEditScopes(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, map[string]string{"PRODUCT_SCOPES": "app:read"})
	token := env.Token(t, "scout@example.com")
	var key struct {
		ID     string
		Secret string `json:"key"`
	}
	env.Post(t, "/v1/keys", token, map[string]any{"name": "daemon", "scopes": []string{"keys:read", "ws:connect"}}).Want(t, http.StatusCreated, "").JSON(t, &key)

	ctx := tab(t)
	signIn(t, ctx, env.URL+"/dashboard/", "scout@example.com")
	openEdit := func() {
		t.Helper()
		do(t, ctx, "edit",
			chromedp.WaitVisible(chromedp.CSS(`#key-actions button.edit`)),
			chromedp.Click(chromedp.CSS(`#key-actions button.edit`)),
			chromedp.WaitVisible(chromedp.CSS(`#edit-scopes input`)),
		)
	}
	do(t, ctx, "the key's page", chromedp.Navigate(env.URL+"/dashboard/#/keys/"+key.ID))
	openEdit()
	boxes := `[...document.querySelectorAll('#edit-scopes input')]`
	if got := eval[string](t, ctx, boxes+`.map(b => b.value).join(',')`); got != "keys:read,keys:write,events:read,ws:connect,app:read" {
		t.Errorf("the dialog offers %s", got)
	}
	checked := boxes + `.filter(b => b.checked).map(b => b.value).join(',')`
	if got := eval[string](t, ctx, checked); got != "keys:read,ws:connect" {
		t.Errorf("the dialog starts with %s checked, want the key's scopes", got)
	}
	for _, screen := range screens {
		do(t, ctx, screen.name, screen.emulate())
		checkAxe(t, ctx, screen.name+" edit dialog with scopes")
		if eval[bool](t, ctx, `document.getElementById('edit-dialog').scrollWidth > document.getElementById('edit-dialog').clientWidth`) {
			t.Errorf("%s: the dialog scrolls sideways", screen.name)
		}
	}
	set := func(scope string, on bool) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(b => { if (b.checked !== %t) b.click(); })(document.querySelector('#edit-scopes input[value=%q]'))`, on, scope))
	}
	do(t, ctx, "no scope",
		set("keys:read", false), set("ws:connect", false),
		chromedp.Click(chromedp.ID("edit-save")),
		chromedp.WaitVisible(chromedp.ID("edit-scopes-error")),
	)
	checkAxe(t, ctx, "the edit dialog without a scope")
	if !eval[bool](t, ctx, `document.getElementById('edit-dialog').open`) {
		t.Error("the dialog closed without a scope")
	}
	env.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, "") // nothing was sent
	do(t, ctx, "narrow",
		set("keys:read", true), set("app:read", true),
		chromedp.Click(chromedp.ID("edit-save")),
		chromedp.WaitNotVisible(chromedp.ID("edit-dialog")),
	)
	waitFor(t, ctx, "the new scopes", `document.getElementById('key-details').textContent.includes('keys:read, app:read')`)
	var got struct{ Scopes []string }
	env.Get(t, "/v1/keys/"+key.ID, token).Want(t, http.StatusOK, "").JSON(t, &got)
	if strings.Join(got.Scopes, ",") != "keys:read,app:read" {
		t.Errorf("the key's scopes after the edit: %v", got.Scopes)
	}
	if s, resp, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(env.URL, "http")+"/v1/ws", &websocket.DialOptions{HTTPHeader: http.Header{"X-API-Key": {key.Secret}}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		if s != nil {
			s.CloseNow()
		}
		t.Errorf("a key without ws:connect opened a socket: %v", err)
	}

	// Revoked in another tab while the dialog is open: the dialog says so.
	openEdit()
	if got := eval[string](t, ctx, checked); got != "keys:read,app:read" {
		t.Errorf("the dialog reopens with %s checked", got)
	}
	env.Delete(t, "/v1/keys/"+key.ID, token).Want(t, http.StatusOK, "")
	do(t, ctx, "save a revoked key",
		set("events:read", true),
		chromedp.Click(chromedp.ID("edit-save")),
		chromedp.WaitVisible(chromedp.ID("edit-error")),
	)
	if got := text(t, ctx, "#edit-error"); !strings.Contains(got, "KEY_NOT_ACTIVE") {
		t.Errorf("the dialog says %q", got)
	}
	if got := eval[string](t, ctx, checked); got != "keys:read,events:read,app:read" {
		t.Errorf("the choice is lost: %s checked", got)
	}
}

// TestDashboardKeyMetadata (issue 18 item 1): a key's page shows its
// metadata as indented JSON, as text (markup in a value stays text), never
// wider than a phone; the edit dialog changes it, says before sending
// what is not a JSON object of at most 4 KiB (nothing is sent), empties it
// with an empty field, and says in the dialog what the server refuses (the
// key revoked meanwhile), keeping what was typed.
func TestDashboardKeyMetadata(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, nil)
	token := env.Token(t, "mona@example.com")
	var key struct{ ID string }
	env.Post(t, "/v1/keys", token, map[string]any{"name": "daemon", "metadata": map[string]any{
		"team": "infra",
		"note": `<img src=x id=injected> ` + strings.Repeat("long-", 40),
	}}).Want(t, http.StatusCreated, "").JSON(t, &key)
	metadata := func() string {
		t.Helper()
		var got struct{ Metadata json.RawMessage }
		env.Get(t, "/v1/keys/"+key.ID, token).Want(t, http.StatusOK, "").JSON(t, &got)
		return string(got.Metadata)
	}
	before := metadata()

	ctx := tab(t)
	signIn(t, ctx, env.URL+"/dashboard/", "mona@example.com")
	do(t, ctx, "the key's page",
		chromedp.Navigate(env.URL+"/dashboard/#/keys/"+key.ID),
		chromedp.WaitVisible(chromedp.CSS(`#key-details pre.metadata`)),
	)
	if got := text(t, ctx, `#key-details pre.metadata`); !strings.Contains(got, `"team": "infra"`) || !strings.Contains(got, `<img src=x id=injected>`) {
		t.Errorf("the metadata reads %q", got)
	}
	if eval[bool](t, ctx, `document.getElementById('injected') !== null || document.querySelector('#key-details [style]') !== null`) {
		t.Error("the metadata's markup reached the page, or it has an inline style")
	}
	for _, screen := range screens[:2] {
		do(t, ctx, screen.name, screen.emulate())
		checkAxe(t, ctx, screen.name+" key page with metadata")
		if eval[bool](t, ctx, `document.documentElement.scrollWidth > window.innerWidth`) {
			t.Errorf("%s: the metadata makes the page wider than the screen", screen.name)
		}
	}

	openEdit := func() {
		t.Helper()
		do(t, ctx, "edit",
			chromedp.WaitVisible(chromedp.CSS(`#key-actions button.edit`)),
			chromedp.Click(chromedp.CSS(`#key-actions button.edit`)),
			chromedp.WaitVisible(chromedp.ID("edit-metadata")),
		)
	}
	openEdit()
	if got := eval[string](t, ctx, `JSON.stringify(JSON.parse(document.getElementById('edit-metadata').value))`); !strings.Contains(got, `"team":"infra"`) {
		t.Errorf("the dialog starts with metadata %s", got)
	}
	for _, bad := range []struct{ typed, says string }{
		{`{team: "infra"}`, "not valid JSON"},
		{`["infra"]`, "must be a JSON object"},
		{`{"blob": "` + strings.Repeat("x", 4100) + `"}`, "at most 4096"},
	} {
		do(t, ctx, "metadata "+bad.says,
			chromedp.SetValue(chromedp.ID("edit-metadata"), bad.typed),
			chromedp.Click(chromedp.ID("edit-save")),
			chromedp.WaitVisible(chromedp.ID("edit-metadata-error")),
		)
		if got := text(t, ctx, "#edit-metadata-error"); !strings.Contains(got, bad.says) {
			t.Errorf("metadata %.30s: the dialog says %q, want %q", bad.typed, got, bad.says)
		}
		if !eval[bool](t, ctx, `document.getElementById('edit-dialog').open && document.getElementById('edit-metadata').getAttribute('aria-invalid') === 'true'`) {
			t.Errorf("metadata %.30s: the dialog closed, or the field is not marked invalid", bad.typed)
		}
	}
	checkAxe(t, ctx, "the edit dialog with a metadata error")
	if got := metadata(); got != before {
		t.Errorf("bad metadata was sent: the key holds %s", got)
	}

	do(t, ctx, "save metadata",
		chromedp.SetValue(chromedp.ID("edit-metadata"), `{"team": "platform", "tier": 2}`),
		chromedp.Click(chromedp.ID("edit-save")),
		chromedp.WaitNotVisible(chromedp.ID("edit-dialog")),
	)
	waitFor(t, ctx, "the new metadata shown", `(document.querySelector('#key-details pre.metadata')?.textContent || '').includes('"platform"')`)
	var saved map[string]any
	if err := json.Unmarshal([]byte(metadata()), &saved); err != nil || len(saved) != 2 || saved["team"] != "platform" || saved["tier"] != 2.0 {
		t.Errorf("the key's metadata after the edit: %v (%v)", saved, err)
	}

	openEdit()
	do(t, ctx, "empty the metadata",
		// chromedp's SetValue refuses an empty value.
		chromedp.Evaluate[chromedp.Void](`document.getElementById('edit-metadata').value = ''`),
		chromedp.Click(chromedp.ID("edit-save")),
		chromedp.WaitNotVisible(chromedp.ID("edit-dialog")),
	)
	waitFor(t, ctx, "no metadata shown", `document.querySelector('#key-details pre.metadata') === null && document.getElementById('key-details').textContent.includes('none')`)
	if got := metadata(); got != `{}` {
		t.Errorf("the key's metadata after emptying: %s", got)
	}

	// Revoked in another tab while the dialog is open: the dialog says so.
	openEdit()
	env.Delete(t, "/v1/keys/"+key.ID, token).Want(t, http.StatusOK, "")
	do(t, ctx, "save a revoked key's metadata",
		chromedp.SetValue(chromedp.ID("edit-metadata"), `{"team": "gone"}`),
		chromedp.Click(chromedp.ID("edit-save")),
		chromedp.WaitVisible(chromedp.ID("edit-error")),
	)
	if got := text(t, ctx, "#edit-error"); !strings.Contains(got, "KEY_NOT_ACTIVE") {
		t.Errorf("the dialog says %q", got)
	}
	if got := eval[string](t, ctx, `document.getElementById('edit-metadata').value`); got != `{"team": "gone"}` {
		t.Errorf("what was typed is lost: %q", got)
	}
}
