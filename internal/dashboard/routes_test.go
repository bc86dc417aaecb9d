package dashboard_test

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/keyhub/keyhub/internal/apitest"
)

// TestDashboardUnknownPagesShowWhoAmI: a hash that names no page shows
// "Who am I", including the names every JavaScript object inherits
// (#/constructor made the router pick Object's constructor as a page and
// throw a TypeError on a blank page).
func TestDashboardUnknownPagesShowWhoAmI(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, nil)
	ctx := tab(t)
	signIn(t, ctx, env.URL+"/dashboard/", "routes@example.com")
	eval[bool](t, ctx, `window.routeErrors = []; window.addEventListener('error', (e) => window.routeErrors.push(String(e.message))); true`)
	for _, hash := range []string{"constructor", "toString", "__proto__", "hasOwnProperty", "valueOf", "nowhere"} {
		// From another page, so that "Who am I" must be shown again.
		do(t, ctx, "open keys", chromedp.Evaluate[chromedp.Void](`window.location.hash = '#/keys'`))
		waitFor(t, ctx, "keys shown", `!document.getElementById('page-keys').hidden`)
		do(t, ctx, "open #/"+hash, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`window.location.hash = '#/%s'`, hash)))
		waitFor(t, ctx, "#/"+hash+" shows who am I", `!document.getElementById('page-me').hidden && document.getElementById('page-keys').hidden`)
		if errs := eval[[]string](t, ctx, `window.routeErrors`); len(errs) > 0 {
			t.Fatalf("#/%s: %v", hash, errs)
		}
	}
}
