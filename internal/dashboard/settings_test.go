package dashboard_test

import (
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/keyhub/keyhub/internal/apitest"
)

// TestDashboardOwnerPolicy (issue 18 item 1): the Settings page shows the
// account's key policy and saves it through PATCH /v1/owner/policy; a
// lifetime set elsewhere that no choice names is shown as it is. axe-core
// checks the page on a laptop and a phone.
func TestDashboardOwnerPolicy(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, nil)
	token := env.Token(t, "pia@example.com")

	ctx := tab(t)
	signIn(t, ctx, env.URL+"/dashboard/", "pia@example.com")
	do(t, ctx, "settings",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=settings]`)),
		chromedp.WaitVisible(chromedp.ID("policy-lifetime")),
	)
	waitFor(t, ctx, "the policy read", `document.querySelector('#policy-form input[name=leak][value=revoke]').checked`)
	if got := eval[string](t, ctx, `document.getElementById('policy-lifetime').selectedOptions[0].textContent`); got != "no limit" {
		t.Errorf("the default lifetime reads %q", got)
	}
	for _, screen := range screens[:2] {
		do(t, ctx, "screen", chromedp.EmulateViewport(screen.width, screen.height))
		checkAxe(t, ctx, screen.name+" settings")
		if eval[bool](t, ctx, `document.documentElement.scrollWidth > window.innerWidth`) {
			t.Errorf("%s settings: the page is wider than the screen", screen.name)
		}
	}

	do(t, ctx, "save",
		chromedp.SetValue(chromedp.ID("policy-lifetime"), "2592000"),
		chromedp.Click(chromedp.CSS(`#policy-form input[name=leak][value=notify]`)),
		chromedp.Click(chromedp.ID("policy-save")),
	)
	waitFor(t, ctx, "saved", `document.getElementById('policy-saved').textContent === 'Saved.'`)
	var policy struct {
		MaxKeyLifetime *int64 `json:"max_key_lifetime"`
		LeakPolicy     string `json:"leak_policy"`
	}
	env.Get(t, "/v1/owner/policy", token).Want(t, http.StatusOK, "").JSON(t, &policy)
	if policy.MaxKeyLifetime == nil || *policy.MaxKeyLifetime != 2592000 || policy.LeakPolicy != "notify" {
		t.Fatalf("the policy after saving: %+v", policy)
	}

	// Set elsewhere (mk, the API): 36 hours is no choice of the list.
	env.Do(t, apitest.Request{Method: http.MethodPatch, Path: "/v1/owner/policy", Cred: token, Body: map[string]any{"max_key_lifetime": 36 * 3600}}).Want(t, http.StatusOK, "")
	do(t, ctx, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("policy-lifetime")))
	waitFor(t, ctx, "the custom lifetime", `document.getElementById('policy-lifetime').value === '129600'`)
	if got := eval[string](t, ctx, `document.getElementById('policy-lifetime').selectedOptions[0].textContent`); got != "36 h" {
		t.Errorf("a 36-hour lifetime reads %q", got)
	}
	if !eval[bool](t, ctx, `document.querySelector('#policy-form input[name=leak][value=notify]').checked`) {
		t.Error("the leak policy read back is not notify")
	}
	// No limit again: null, not 0.
	do(t, ctx, "no limit",
		chromedp.SetValue(chromedp.ID("policy-lifetime"), ""),
		chromedp.Click(chromedp.ID("policy-save")),
	)
	waitFor(t, ctx, "saved again", `document.getElementById('policy-saved').textContent === 'Saved.' && document.getElementById('policy-lifetime').value === ''`)
	env.Get(t, "/v1/owner/policy", token).Want(t, http.StatusOK, "").JSON(t, &policy)
	if policy.MaxKeyLifetime != nil {
		t.Fatalf("no limit saved as %d", *policy.MaxKeyLifetime)
	}
}
