package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// Revoking a key ends every key obtained through it (issue 17 item 1):
// README, "Invariants", "Descendants".

// makeKey creates a key with cred and answers it with its secret.
func makeKey(t *testing.T, env *apitest.Env, cred, name string) api.CreatedKey {
	t.Helper()
	var k api.CreatedKey
	env.Post(t, "/v1/keys", cred, map[string]any{"name": name}).Want(t, http.StatusCreated, "").JSON(t, &k)
	return k
}

// refreshKey refreshes id with cred and the given grace (seconds).
func refreshKey(t *testing.T, env *apitest.Env, cred string, id uuid.UUID, grace int) api.CreatedKey {
	t.Helper()
	var out api.Refreshed
	env.Post(t, "/v1/keys/"+id.String()+"/refresh", cred, map[string]any{"grace_period": grace}).Want(t, http.StatusCreated, "").JSON(t, &out)
	return out.NewKey
}

// works checks that each key is accepted, refused checks each is refused
// with KEY_REVOKED: on the process that wrote, at once.
func works(t *testing.T, env *apitest.Env, keys ...api.CreatedKey) {
	t.Helper()
	for _, k := range keys {
		if r := env.Get(t, "/v1/me", k.Secret); r.Status != http.StatusOK {
			t.Errorf("key %q: %d %s, want it working", k.Name, r.Status, r.Body)
		}
	}
}

func refused(t *testing.T, env *apitest.Env, keys ...api.CreatedKey) {
	t.Helper()
	for _, k := range keys {
		if r := env.Get(t, "/v1/me", k.Secret); r.Status != http.StatusUnauthorized || r.ErrorCode() != "KEY_REVOKED" {
			t.Errorf("key %q: %d %s, want 401 KEY_REVOKED", k.Name, r.Status, r.Body)
		}
	}
}

// cascadeDetails is the details of a "revoked" event the cascade wrote.
type cascadeDetails struct {
	Reason string    `json:"reason"`
	Parent uuid.UUID `json:"parent"`
	Cause  uuid.UUID `json:"cause"`
}

// revokedEvents are the owner's "revoked" events by key.
func revokedEvents(t *testing.T, env *apitest.Env, jwt string) map[uuid.UUID]api.Event {
	t.Helper()
	var page api.EventList
	env.Get(t, "/v1/events?type=revoked&limit=100", jwt).Want(t, http.StatusOK, "").JSON(t, &page)
	byKey := map[uuid.UUID]api.Event{}
	for _, e := range page.Data {
		if _, twice := byKey[e.KeyID]; twice {
			t.Errorf("two revoked events for key %s", e.KeyID)
		}
		byKey[e.KeyID] = e
	}
	return byKey
}

// wantCascaded checks the revoked event of k: written by the revoke of
// cause (same stamp), naming the parent k was obtained through.
func wantCascaded(t *testing.T, events map[uuid.UUID]api.Event, k api.CreatedKey, parent, cause uuid.UUID) {
	t.Helper()
	e, ok := events[k.ID]
	if !ok {
		t.Errorf("no revoked event for %q", k.Name)
		return
	}
	var d cascadeDetails
	if err := json.Unmarshal(e.Details, &d); err != nil || d != (cascadeDetails{Reason: "parent_revoked", Parent: parent, Cause: cause}) {
		t.Errorf("%q revoked with details %s, want reason parent_revoked, parent %s, cause %s", k.Name, e.Details, parent, cause)
	}
	if root, ok := events[cause]; ok && !e.CreatedAt.Equal(root.CreatedAt) {
		t.Errorf("%q revoked at %v, not in the transaction that revoked its cause (%v)", k.Name, e.CreatedAt, root.CreatedAt)
	}
}

func TestRevokeEndsEveryKeyMadeThroughIt(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "cascade@example.com")
	me := setTier(t, env, jwt, "team")
	parent := makeKey(t, env, jwt, "parent")
	unrelated := makeKey(t, env, jwt, "unrelated")
	child := makeKey(t, env, parent.Secret, "child")
	grandchild := makeKey(t, env, child.Secret, "grandchild")
	sibling := makeKey(t, env, unrelated.Secret, "unrelated's child")
	works(t, env, child, grandchild) // now cached

	env.Delete(t, "/v1/keys/"+parent.ID.String(), jwt).Want(t, http.StatusOK, "")
	refused(t, env, parent, child, grandchild)
	works(t, env, unrelated, sibling)
	// A write is refused too, not only a read.
	env.Post(t, "/v1/keys", grandchild.Secret, map[string]any{"name": "escape"}).Want(t, http.StatusUnauthorized, "KEY_REVOKED")

	events := revokedEvents(t, env, jwt)
	if len(events) != 3 {
		t.Errorf("%d revoked events, want 3 (parent, child, grandchild)", len(events))
	}
	wantCascaded(t, events, child, parent.ID, parent.ID)
	wantCascaded(t, events, grandchild, child.ID, parent.ID)
	for _, e := range events {
		if e.ActorUserID == nil || *e.ActorUserID != me.UserID || e.ActorKeyID != nil {
			t.Errorf("revoked event of %s: actor %v / key %v, want the dashboard user who revoked", e.KeyID, e.ActorUserID, e.ActorKeyID)
		}
	}
	// The keys say so too, with the parent's stamp.
	for _, k := range []api.CreatedKey{child, grandchild} {
		var got api.Key
		env.Get(t, "/v1/keys/"+k.ID.String(), jwt).Want(t, http.StatusOK, "").JSON(t, &got)
		if got.Status != "revoked" || got.RevokedAt == nil || !got.RevokedAt.Equal(events[parent.ID].CreatedAt) {
			t.Errorf("%q is %s (revoked at %v), want revoked with its parent", k.Name, got.Status, got.RevokedAt)
		}
	}
	// Revoking again changes nothing and writes nothing.
	env.Delete(t, "/v1/keys/"+parent.ID.String(), jwt).Want(t, http.StatusOK, "")
	if n := len(revokedEvents(t, env, jwt)); n != 3 {
		t.Errorf("%d revoked events after a second revoke, want 3", n)
	}
}

// A key that revokes its own parent ends itself with it.
func TestChildRevokingItsParentEndsItself(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "selfend@example.com")
	setTier(t, env, jwt, "team")
	parent := makeKey(t, env, jwt, "parent")
	child := makeKey(t, env, parent.Secret, "child")
	env.Delete(t, "/v1/keys/"+parent.ID.String(), child.Secret).Want(t, http.StatusOK, "")
	refused(t, env, parent, child)
}

// A refresh is not a revocation: the children of a refreshed key, and of a
// refreshed child, pass to the successor. Revoking the old key afterwards
// (a rotation's clean-up) ends none of them; revoking the successor ends
// them all.
func TestRefreshPassesChildrenToTheSuccessor(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "handover@example.com")
	setTier(t, env, jwt, "team")
	parent := makeKey(t, env, jwt, "parent")
	child := makeKey(t, env, parent.Secret, "child")
	grandchild := makeKey(t, env, child.Secret, "grandchild")

	successor := refreshKey(t, env, parent.Secret, parent.ID, 3600) // the parent rotates itself, with grace
	childSuccessor := refreshKey(t, env, child.Secret, child.ID, 0) // the child rotates itself, at once
	refused(t, env, child)
	works(t, env, parent, successor, childSuccessor, grandchild)

	env.Delete(t, "/v1/keys/"+parent.ID.String(), jwt).Want(t, http.StatusOK, "")
	refused(t, env, parent)
	works(t, env, successor, childSuccessor, grandchild)

	env.Delete(t, "/v1/keys/"+successor.ID.String(), jwt).Want(t, http.StatusOK, "")
	refused(t, env, successor, childSuccessor, grandchild)
	events := revokedEvents(t, env, jwt)
	wantCascaded(t, events, childSuccessor, successor.ID, successor.ID)
	wantCascaded(t, events, grandchild, childSuccessor.ID, successor.ID)
}

// A key refreshed by another key can be obtained through that key too:
// revoking the refresher ends the replacement, as if it had created it,
// and the replaced key's grace with it (a predecessor never outlives its
// successor).
func TestRefreshByAnotherKeyMakesItAParent(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "refresher@example.com")
	setTier(t, env, jwt, "team")
	refresher := makeKey(t, env, jwt, "refresher")
	target := makeKey(t, env, jwt, "target")
	replacement := refreshKey(t, env, refresher.Secret, target.ID, 3600)
	works(t, env, target, replacement)
	env.Delete(t, "/v1/keys/"+refresher.ID.String(), jwt).Want(t, http.StatusOK, "")
	refused(t, env, replacement, target)
	events := revokedEvents(t, env, jwt)
	wantCascaded(t, events, replacement, refresher.ID, refresher.ID)
	var d struct{ Reason, Successor string }
	if err := json.Unmarshal(events[target.ID].Details, &d); err != nil || d.Reason != "successor_revoked" || d.Successor != replacement.ID.String() {
		t.Errorf("the replaced key's grace ended with details %s, want reason successor_revoked", events[target.ID].Details)
	}
}

// A key in its grace period can still make keys. Those end when its grace
// ends early by a revoke of its successor, pass on when a refresh of the
// successor ends it, and expire with it otherwise (a key never outlives
// its creator), while the children it handed over keep working.
func TestGracePredecessorsChildren(t *testing.T) {
	t.Parallel()
	t.Run("successor revoked", func(t *testing.T) {
		t.Parallel()
		env := apitest.New(t, nil)
		jwt := env.Token(t, "grace-revoked@example.com")
		setTier(t, env, jwt, "team")
		old := makeKey(t, env, jwt, "old")
		successor := refreshKey(t, env, jwt, old.ID, 3600)
		late := makeKey(t, env, old.Secret, "made in grace")
		env.Delete(t, "/v1/keys/"+successor.ID.String(), jwt).Want(t, http.StatusOK, "")
		refused(t, env, old, late)
		wantCascaded(t, revokedEvents(t, env, jwt), late, old.ID, successor.ID)
	})
	t.Run("successor refreshed", func(t *testing.T) {
		t.Parallel()
		env := apitest.New(t, nil)
		jwt := env.Token(t, "grace-refreshed@example.com")
		setTier(t, env, jwt, "team")
		old := makeKey(t, env, jwt, "old")
		successor := refreshKey(t, env, jwt, old.ID, 3600)
		late := makeKey(t, env, old.Secret, "made in grace")
		third := refreshKey(t, env, jwt, successor.ID, 3600) // ends old's grace
		refused(t, env, old)
		works(t, env, late, successor, third)
		env.Delete(t, "/v1/keys/"+third.ID.String(), jwt).Want(t, http.StatusOK, "")
		refused(t, env, late)
		wantCascaded(t, revokedEvents(t, env, jwt), late, third.ID, third.ID)
	})
	t.Run("grace expires", func(t *testing.T) {
		t.Parallel()
		env := apitest.New(t, map[string]string{"EXPIRY_SWEEP_INTERVAL": "100ms"})
		jwt := env.Token(t, "grace-expired@example.com")
		setTier(t, env, jwt, "team")
		old := makeKey(t, env, jwt, "old")
		before := makeKey(t, env, old.Secret, "made before the refresh")
		var out api.Refreshed
		env.Post(t, "/v1/keys/"+old.ID.String()+"/refresh", jwt, map[string]any{"grace_period": 3600}).Want(t, http.StatusCreated, "").JSON(t, &out)
		late := makeKey(t, env, old.Secret, "made in grace")
		if late.ExpiresAt == nil || !late.ExpiresAt.Equal(*out.OldKey.ExpiresAt) {
			t.Fatalf("a key made in grace expires at %v, want the end of the grace (%v)", late.ExpiresAt, out.OldKey.ExpiresAt)
		}
		// The grace ends: the old key and what it made in grace have expired.
		if _, err := env.Pool.Exec(context.Background(),
			"UPDATE api_keys SET expires_at = now() WHERE id = ANY($1)", []uuid.UUID{old.ID, late.ID}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for len(auditEvents(t, env, "/v1/keys/"+old.ID.String()+"/events?type=expired", jwt)) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the old key's expiry was not swept within 30s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		works(t, env, before, out.NewKey)
		env.Delete(t, "/v1/keys/"+out.NewKey.ID.String(), jwt).Want(t, http.StatusOK, "")
		refused(t, env, before)
		wantCascaded(t, revokedEvents(t, env, jwt), before, out.NewKey.ID, out.NewKey.ID)
	})
}

// A child that refreshes its parent becomes the successor's parent as well
// as its child: the walk ends on the cycle, and revoking either ends both.
func TestRevokeEndsOnACycle(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "cycle@example.com")
	setTier(t, env, jwt, "team")
	parent := makeKey(t, env, jwt, "parent")
	child := makeKey(t, env, parent.Secret, "child")
	successor := refreshKey(t, env, child.Secret, parent.ID, 0)
	works(t, env, child, successor)
	env.Delete(t, "/v1/keys/"+child.ID.String(), jwt).Want(t, http.StatusOK, "")
	refused(t, env, child, successor)
	wantCascaded(t, revokedEvents(t, env, jwt), successor, child.ID, child.ID)
}
