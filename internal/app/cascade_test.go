package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// Revoking a key on one process ends every key obtained through it on
// every process: their requests are refused and their sockets close with
// 4001 on both, though the revoking process never saw the grandchild. A
// refresh on the other process hands the children over first.
func TestRevokeEndsDescendantsOnEveryProcess(t *testing.T) {
	t.Parallel()
	a, b, jwt := cluster(t, nil)
	var me api.Me
	a.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "").JSON(t, &me)
	if _, err := a.Pool.Exec(context.Background(), "UPDATE owners SET tier = 'team' WHERE id = $1", me.OwnerID); err != nil {
		t.Fatal(err)
	}
	parent := createKey(t, a, jwt, map[string]any{"name": "parent"})
	unrelated := createKey(t, a, jwt, map[string]any{"name": "unrelated"})
	child := createKey(t, b, parent.Secret, map[string]any{"name": "child"})
	grandchild := createKey(t, b, child.Secret, map[string]any{"name": "grandchild"})

	// The child rotates itself on B: the grandchild passes to its successor.
	var refreshed api.Refreshed
	b.Post(t, "/v1/keys/"+child.ID.String()+"/refresh", child.Secret, map[string]any{}).Want(t, http.StatusCreated, "").JSON(t, &refreshed)
	successor := refreshed.NewKey
	b.Get(t, "/v1/me", grandchild.Secret).Want(t, http.StatusOK, "")

	sockets := []*socket{connect(t, b, grandchild.Secret), connect(t, b, successor.Secret), connect(t, a, grandchild.Secret)}
	bystander := connect(t, b, unrelated.Secret)
	a.Delete(t, "/v1/keys/"+parent.ID.String(), jwt).Want(t, http.StatusOK, "")

	for _, s := range sockets {
		s.expectClose(t, 4001, 5*time.Second)
	}
	for _, env := range []*apitest.Env{a, b} {
		for _, secret := range []string{successor.Secret, grandchild.Secret} {
			eventually(t, 5*time.Second, refusedWith(t, env, secret, "KEY_REVOKED"))
		}
		env.Get(t, "/v1/me", unrelated.Secret).Want(t, http.StatusOK, "")
	}
	bystander.expectOpen(t)
}

// The writer publishes every key its revoke ended, not only the one asked
// for: with its change feed down (and a stale bound far away), its own
// sockets of the descendants close at once and its cache refuses them.
func TestWriterEndsDescendantsWithTheFeedDown(t *testing.T) {
	t.Parallel()
	a, b, jwt, proxy := clusterWithCuttableFeed(t, map[string]string{"CHANGE_FEED_STALE_BOUND": "1m"})
	var me api.Me
	b.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "").JSON(t, &me)
	if _, err := a.Pool.Exec(context.Background(), "UPDATE owners SET tier = 'team' WHERE id = $1", me.OwnerID); err != nil {
		t.Fatal(err)
	}
	parent := createKey(t, b, jwt, map[string]any{"name": "parent"})
	child := createKey(t, b, parent.Secret, map[string]any{"name": "child"})
	grandchild := createKey(t, b, child.Secret, map[string]any{"name": "grandchild"})
	b.Get(t, "/v1/me", child.Secret).Want(t, http.StatusOK, "") // cached
	sock := connect(t, b, grandchild.Secret)
	cutFeedOf(t, proxy, b)

	b.Delete(t, "/v1/keys/"+parent.ID.String(), jwt).Want(t, http.StatusOK, "")
	b.Get(t, "/v1/me", child.Secret).Want(t, http.StatusUnauthorized, "KEY_REVOKED")
	sock.expectClose(t, 4001, 2*time.Second)
	if b.App.Feed.Listening() {
		t.Fatal("the feed listens: the test proves nothing")
	}
}
