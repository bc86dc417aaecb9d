package httpapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// Who acted (issue 19 item 15): events carry the acting user's email, and
// keys who created them (a session, or a key by its id and prefix), on
// every read and write answer. An email is shown only while its user
// belongs to the reading account: once the user has moved to another
// owner, the old account sees the ids, never the address.
func TestWhoActed(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "ines@example.com")
	var me api.Me
	env.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "").JSON(t, &me)
	if _, err := env.Pool.Exec(context.Background(), "UPDATE owners SET tier = 'team' WHERE id = $1", me.OwnerID); err != nil {
		t.Fatal(err)
	}
	email := func(p *string) string {
		if p == nil {
			return "<null>"
		}
		return *p
	}

	parent := makeKey(t, env, jwt, "parent")
	if c := parent.CreatedBy; c == nil || c.UserID != me.UserID || email(c.Email) != "ines@example.com" || c.KeyID != nil || c.KeyPrefix != nil {
		t.Fatalf("a key made in a session: created_by %+v", c)
	}
	var child api.CreatedKey
	env.Post(t, "/v1/keys", parent.Secret, map[string]any{"name": "child", "scopes": []string{"keys:read", "events:read"}}).Want(t, http.StatusCreated, "").JSON(t, &child)
	madeByParent := func(what string, c *api.KeyCreator, wantEmail string) {
		t.Helper()
		if c == nil || c.UserID != me.UserID || email(c.Email) != wantEmail || c.KeyID == nil || *c.KeyID != parent.ID || c.KeyPrefix == nil || *c.KeyPrefix != parent.Prefix {
			t.Fatalf("%s: created_by %+v, want user %s (%s) with key %s (%s)", what, c, me.UserID, wantEmail, parent.ID, parent.Prefix)
		}
	}
	madeByParent("the create's answer", child.CreatedBy, "ines@example.com")

	var got api.Key
	env.Get(t, "/v1/keys/"+child.ID.String(), jwt).Want(t, http.StatusOK, "").JSON(t, &got)
	madeByParent("GET /v1/keys/{id}", got.CreatedBy, "ines@example.com")
	var list api.KeyList
	env.Get(t, "/v1/keys?status=all", jwt).Want(t, http.StatusOK, "").JSON(t, &list)
	if len(list.Data) != 2 {
		t.Fatalf("%d keys listed", len(list.Data))
	}
	for _, k := range list.Data {
		if k.ID == child.ID {
			madeByParent("GET /v1/keys", k.CreatedBy, "ines@example.com")
		} else if k.CreatedBy == nil || k.CreatedBy.KeyID != nil || email(k.CreatedBy.Email) != "ines@example.com" {
			t.Fatalf("GET /v1/keys: the parent's created_by %+v", k.CreatedBy)
		}
	}
	// A write's answer carries it too.
	patchKey(t, env, jwt, child, map[string]any{"name": "kid"}).Want(t, http.StatusOK, "").JSON(t, &got)
	madeByParent("PATCH /v1/keys/{id}", got.CreatedBy, "ines@example.com")

	var events api.EventList
	env.Get(t, "/v1/events?type=created", jwt).Want(t, http.StatusOK, "").JSON(t, &events)
	if len(events.Data) != 2 {
		t.Fatalf("%d created events", len(events.Data))
	}
	for _, e := range events.Data {
		if email(e.ActorEmail) != "ines@example.com" || e.ActorUserID == nil || *e.ActorUserID != me.UserID {
			t.Fatalf("event %d: actor %v %s", e.ID, e.ActorUserID, email(e.ActorEmail))
		}
	}

	// The user moves to another account; the child key still reads the old
	// one (a key acts for the owner it belongs to).
	var elsewhere uuid.UUID
	if err := env.Pool.QueryRow(context.Background(), "INSERT INTO owners (name) VALUES ('elsewhere') RETURNING id").Scan(&elsewhere); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Pool.Exec(context.Background(), "UPDATE users SET default_owner_id = $2 WHERE id = $1", me.UserID, elsewhere); err != nil {
		t.Fatal(err)
	}
	env.Get(t, "/v1/keys/"+child.ID.String(), child.Secret).Want(t, http.StatusOK, "").JSON(t, &got)
	madeByParent("after the user moved", got.CreatedBy, "<null>")
	env.Get(t, "/v1/keys?status=all", child.Secret).Want(t, http.StatusOK, "").JSON(t, &list)
	for _, k := range list.Data {
		if k.CreatedBy == nil || k.CreatedBy.Email != nil || k.CreatedBy.UserID != me.UserID {
			t.Fatalf("after the user moved, GET /v1/keys: created_by %+v", k.CreatedBy)
		}
	}
	env.Get(t, "/v1/events", child.Secret).Want(t, http.StatusOK, "").JSON(t, &events)
	if len(events.Data) < 3 {
		t.Fatalf("%d events", len(events.Data))
	}
	for _, e := range events.Data {
		if e.ActorEmail != nil || e.ActorUserID == nil {
			t.Fatalf("after the user moved, event %d (%s) names %s", e.ID, e.Type, email(e.ActorEmail))
		}
	}
}
