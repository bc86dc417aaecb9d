package dashboard_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// TestDashboardWhoActed (issue 19 item 15): the audit events and a key's
// history say who acted by email (they said "dashboard user"), with the
// key used when a key acted; the key list and a key's page say who
// created each key. Without an email (a user who left the account, or
// has none) the page says "another user", or "you" for the viewer.
func TestDashboardWhoActed(t *testing.T) {
	t.Parallel()
	env := apitest.NewDev(t, nil)
	ada := env.Token(t, "ada@example.com")
	setTier(t, env, ada, "team")
	var adaMe api.Me
	env.Get(t, "/v1/me", ada).Want(t, http.StatusOK, "").JSON(t, &adaMe)
	var parent, child, bobs api.CreatedKey
	env.Post(t, "/v1/keys", ada, map[string]any{"name": "parent"}).Want(t, http.StatusCreated, "").JSON(t, &parent)
	env.Post(t, "/v1/keys", parent.Secret, map[string]any{"name": "child", "scopes": []string{"keys:read"}}).Want(t, http.StatusCreated, "").JSON(t, &child)

	// Bob joins Ada's account, makes a key there, and leaves it: the
	// account may no longer see his address.
	bob := env.Token(t, "bob@example.com")
	var bobMe api.Me
	env.Get(t, "/v1/me", bob).Want(t, http.StatusOK, "").JSON(t, &bobMe)
	moveUser(t, env, bob, bobMe.UserID.String(), adaMe.OwnerID.String())
	env.Post(t, "/v1/keys", bob, map[string]any{"name": "bobs"}).Want(t, http.StatusCreated, "").JSON(t, &bobs)
	moveUser(t, env, bob, bobMe.UserID.String(), bobMe.OwnerID.String())

	ctx := tab(t)
	signIn(t, ctx, env.URL+"/dashboard/", "ada@example.com")
	do(t, ctx, "all keys",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=keys]`)),
		chromedp.WaitVisible(chromedp.CSS(`#keys-table tr[data-status=active]`)),
	)
	waitFor(t, ctx, "three keys", `document.querySelectorAll('#keys-table tbody tr').length === 3`)
	creator := func(id string) string {
		return eval[string](t, ctx, `document.querySelector('#keys-table tr[data-key-id="`+id+`"] .creator').textContent`)
	}
	for _, c := range []struct{ id, want string }{
		{parent.ID.String(), "by ada@example.com"},
		{child.ID.String(), "by ada@example.com with key " + parent.Prefix},
		{bobs.ID.String(), "by another user"},
	} {
		if got := creator(c.id); got != c.want {
			t.Errorf("the key list says %q, want %q", got, c.want)
		}
	}

	actors := `[...document.querySelectorAll('#events-table tbody td.actor')].map(c => c.textContent).join(' | ')`
	byParent := "ada@example.com with key parent (" + parent.Prefix + ")"
	do(t, ctx, "events",
		chromedp.Click(chromedp.CSS(`#nav a[data-page=events]`)),
		chromedp.WaitVisible(chromedp.CSS(`#events-table tr[data-type=created]`)),
	)
	if got, want := eval[string](t, ctx, actors), "another user | "+byParent+" | ada@example.com"; got != want {
		t.Errorf("events by %q, want %q", got, want)
	}
	waitFor(t, ctx, "live updates on", `document.getElementById('live-status').textContent === 'Live updates: on'`)
	env.Delete(t, "/v1/keys/"+child.ID.String(), parent.Secret).Want(t, http.StatusOK, "")
	do(t, ctx, "the revoke arrives live", chromedp.WaitVisible(chromedp.CSS(`#events-table tr[data-type=revoked][data-live=true]`)))
	if got := text(t, ctx, `#events-table tr[data-type=revoked] td.actor`); got != byParent {
		t.Errorf("a live event by %q, want %q", got, byParent)
	}

	do(t, ctx, "the child's page",
		chromedp.Navigate(env.URL+"/dashboard/#/keys/"+child.ID.String()),
		chromedp.WaitVisible(chromedp.CSS(`#key-history-table tr[data-type=created]`)),
	)
	waitFor(t, ctx, "the child's details", `document.getElementById('key-title').textContent === 'child'`)
	createdBy := `(dt => dt.nextElementSibling)([...document.querySelectorAll('#key-details dt')].find(dt => dt.textContent === 'Created by'))`
	if got := eval[string](t, ctx, createdBy+`.textContent`); got != byParent {
		t.Errorf("the key's page says created by %q, want %q", got, byParent)
	}
	if got := eval[string](t, ctx, createdBy+`.querySelector('a').hash`); got != "#/keys/"+parent.ID.String() {
		t.Errorf("the creating key links to %q", got)
	}
	if got := text(t, ctx, `#key-history-table tr[data-type=created] td.actor`); got != byParent {
		t.Errorf("the key's history says %q, want %q", got, byParent)
	}

	// Ada without an email (a phone sign-in has none): her own acts are hers.
	sqlCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := env.Pool.Exec(sqlCtx, `UPDATE users SET email = '' WHERE id = $1`, adaMe.UserID); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, "the child's page again",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`#key-history-table tr[data-type=created]`)),
	)
	if got, want := text(t, ctx, `#key-history-table tr[data-type=created] td.actor`), "you with key parent ("+parent.Prefix+")"; got != want {
		t.Errorf("without an email, the history says %q, want %q", got, want)
	}
}

// moveUser makes the token's user a member of owner (as an operator
// would, in SQL) and waits until the API acts for that owner.
func moveUser(t *testing.T, env *apitest.Env, token, userID, owner string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := env.Pool.Exec(ctx, `UPDATE users SET default_owner_id = $2 WHERE id = $1`, userID, owner); err != nil {
		t.Fatalf("move user: %v", err)
	}
	for {
		var me api.Me
		env.Get(t, "/v1/me", token).Want(t, http.StatusOK, "").JSON(t, &me)
		if me.OwnerID.String() == owner {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the API still acts for owner %s, want %s", me.OwnerID, owner)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
