package dashboard_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/keyhub/keyhub/internal/apitest"
)

// TestDashboardKeyControls: from the key list, Disable (after a
// confirmation) makes the key refused with KEY_DISABLED and Enable makes it
// work again; on the key's page, Edit renames it and sets its allowed
// networks (a bad network is said in the dialog, which keeps what was
// typed), and the key is then refused from elsewhere. axe-core checks the
// pages and the dialog.
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
	checkAxe(t, ctx, "the disable confirmation")
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
