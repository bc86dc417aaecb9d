package dashboard_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/keyhub/keyhub/internal/apitest"
)

// TestDashboardRevokeNamesKeysMadeWithIt (issue 19 item 17): revoking a
// key ends every key made with it, transitively (a child that refreshed
// itself, and what its successor made, included), so a key with such keys
// asks for its name to be typed and says how many it ends, even from its
// own page, which knows only a few keys. The number is what the server
// then revokes.
func TestDashboardRevokeNamesKeysMadeWithIt(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, nil)
	token := env.Token(t, "cato@example.com")
	setTier(t, env, token, "team")
	type created struct {
		ID     string
		Secret string `json:"key"`
	}
	create := func(credential, name string) created {
		t.Helper()
		var k created
		env.Post(t, "/v1/keys", credential, map[string]any{"name": name}).Want(t, http.StatusCreated, "").JSON(t, &k)
		return k
	}
	parent := create(token, "parent")
	other := create(token, "unrelated")
	child := create(parent.Secret, "child")
	ended := create(parent.Secret, "ended child")
	env.Delete(t, "/v1/keys/"+ended.ID, token).Want(t, http.StatusOK, "")
	// The child refreshes itself: its successor was made with the parent too.
	var refreshed struct {
		NewKey created `json:"new_key"`
	}
	env.Post(t, "/v1/keys/"+child.ID+"/refresh", child.Secret, map[string]any{"grace_period": 0}).Want(t, http.StatusCreated, "").JSON(t, &refreshed)
	grandchild := create(refreshed.NewKey.Secret, "grandchild")

	ctx := tab(t)
	signIn(t, ctx, env.URL+"/dashboard/", "cato@example.com")
	do(t, ctx, "the parent's page",
		chromedp.Navigate(env.URL+"/dashboard/#/keys/"+parent.ID),
		chromedp.WaitVisible(chromedp.CSS(`#key-actions button.revoke`)),
		chromedp.Click(chromedp.CSS(`#key-actions button.revoke`)),
		chromedp.WaitVisible(chromedp.ID("confirm-yes")),
	)
	if eval[bool](t, ctx, `document.getElementById('confirm-type-row').hidden`) || !eval[bool](t, ctx, `document.getElementById('confirm-yes').disabled`) {
		t.Error("a key with keys made with it can be revoked without typing its name")
	}
	if got := text(t, ctx, "#confirm-text"); !strings.Contains(got, "2 working keys made with it will be revoked too") {
		t.Errorf("the dialog says %q, want the 2 keys it also ends", got)
	}
	do(t, ctx, "type the name and revoke",
		chromedp.SendKeys(chromedp.ID("confirm-type"), "parent"),
		chromedp.WaitEnabled(chromedp.ID("confirm-yes")),
		chromedp.Click(chromedp.ID("confirm-yes")),
		chromedp.WaitVisible(chromedp.CSS(`#key-details .status.revoked`)),
	)
	for _, k := range []created{refreshed.NewKey, grandchild} {
		env.Get(t, "/v1/me", k.Secret).Want(t, http.StatusUnauthorized, "KEY_REVOKED")
	}
	env.Get(t, "/v1/me", other.Secret).Want(t, http.StatusOK, "")

	// A key with nothing made with it (nor a connection) asks no typing.
	do(t, ctx, "the unrelated key's page",
		chromedp.Navigate(env.URL+"/dashboard/#/keys/"+other.ID),
		chromedp.WaitVisible(chromedp.CSS(`#key-actions button.revoke`)),
		chromedp.Click(chromedp.CSS(`#key-actions button.revoke`)),
		chromedp.WaitVisible(chromedp.ID("confirm-yes")),
	)
	if !eval[bool](t, ctx, `document.getElementById('confirm-type-row').hidden`) {
		t.Errorf("a key with nothing made with it asks for its name: %q", text(t, ctx, "#confirm-text"))
	}
}
