package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// Disabling a key on one process pauses it and every key obtained through
// it on every process, within the revocation bound of the disable's
// answer: requests are refused with KEY_DISABLED, sockets close with 4001
// (on both processes), upgrades are refused, though the disabling process
// never saw the grandchild; enabling it on the other process restores them
// all within the bound of its answer, with nothing replaced. A key it did
// not make keeps working.
func TestDisableAndEnableOnEveryProcess(t *testing.T) {
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
	family := []string{parent.Secret, child.Secret, grandchild.Secret}
	for _, env := range []*apitest.Env{a, b} {
		for _, secret := range family {
			env.Get(t, "/v1/me", secret).Want(t, http.StatusOK, "") // cached on both
		}
	}
	sockets := []*socket{connect(t, b, grandchild.Secret), connect(t, a, child.Secret), connect(t, b, parent.Secret)}
	bystander := connect(t, b, unrelated.Secret)

	a.Post(t, "/v1/keys/"+parent.ID.String()+"/disable", jwt, nil).Want(t, http.StatusOK, "")
	answered := time.Now()
	deadline := answered.Add(revocationBound)
	for _, s := range sockets {
		s.expectClosedBy(t, 4001, deadline)
		t.Logf("socket closed %v after the disable's answer", s.closedAt.Sub(answered).Round(time.Millisecond))
	}
	for _, env := range []*apitest.Env{a, b} {
		for _, secret := range family {
			eventually(t, time.Until(deadline), refusedWith(t, env, secret, "KEY_DISABLED"))
		}
		env.Get(t, "/v1/me", unrelated.Secret).Want(t, http.StatusOK, "")
		if s, status, body := connectURL(t, env.URL, grandchild.Secret); s != nil || status != http.StatusUnauthorized || !strings.Contains(body, "KEY_DISABLED") {
			t.Fatalf("upgrade with a disabled key's grandchild: %d %s", status, body)
		}
	}
	bystander.expectOpen(t)

	b.Post(t, "/v1/keys/"+parent.ID.String()+"/enable", jwt, nil).Want(t, http.StatusOK, "")
	deadline = time.Now().Add(revocationBound)
	for _, env := range []*apitest.Env{a, b} {
		for _, secret := range family {
			eventually(t, time.Until(deadline), func() string {
				if r := env.Get(t, "/v1/me", secret); r.Status != http.StatusOK {
					return "not restored: " + string(r.Body)
				}
				return ""
			})
		}
	}
	connect(t, a, grandchild.Secret).expectOpen(t)
	var keys api.KeyList
	a.Get(t, "/v1/keys?status=all", jwt).Want(t, http.StatusOK, "").JSON(t, &keys)
	for _, k := range keys.Data {
		if k.Status != "active" || k.ReplacedBy != nil || k.DisabledAt != nil {
			t.Errorf("key %q after disable and enable: %+v", k.Name, k)
		}
	}
}

// A key's allowed networks change on one process; the other, which cached
// the key, refuses it from outside them at once it hears the change, and
// every process closes the key's sockets open from outside them (4001);
// a socket still inside its key's new networks stays open.
func TestAllowedCIDRsOnEveryProcess(t *testing.T) {
	t.Parallel()
	a, b, jwt := cluster(t, nil)
	var me api.Me
	a.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "").JSON(t, &me)
	if _, err := a.Pool.Exec(context.Background(), "UPDATE owners SET tier = 'team' WHERE id = $1", me.OwnerID); err != nil {
		t.Fatal(err)
	}
	key := createKey(t, a, jwt, map[string]any{"name": "narrowed"})
	steady := createKey(t, a, jwt, map[string]any{"name": "steady"})
	b.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, "") // cached on B
	outside := []*socket{connect(t, a, key.Secret), connect(t, b, key.Secret)}
	inside := connect(t, b, steady.Secret)
	patch := func(env *apitest.Env, id string, nets ...string) {
		t.Helper()
		env.Do(t, apitest.Request{Method: http.MethodPatch, Path: "/v1/keys/" + id, Cred: jwt,
			Body: map[string]any{"allowed_cidrs": nets}}).Want(t, http.StatusOK, "")
	}
	patch(b, steady.ID.String(), "127.0.0.0/8", "::1/128")
	patch(a, key.ID.String(), "192.0.2.0/24")
	deadline := time.Now().Add(revocationBound)
	for _, s := range outside {
		s.expectClosedBy(t, 4001, deadline)
	}
	eventually(t, time.Until(deadline), func() string {
		if r := b.Get(t, "/v1/me", key.Secret); r.Status != http.StatusForbidden || r.ErrorCode() != "IP_NOT_ALLOWED" {
			return "B still admits it from 127.0.0.1: " + string(r.Body)
		}
		return ""
	})
	// The steady key's change committed first, so B has applied it.
	inside.expectOpen(t)
	b.Get(t, "/v1/me", steady.Secret).Want(t, http.StatusOK, "")
}
