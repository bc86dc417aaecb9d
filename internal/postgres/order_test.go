package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/pgtest"
	"github.com/keyhub/keyhub/internal/postgres"
)

// A revoke whose transaction started before a child key was created by
// the key it revokes (it waited on a lock meanwhile) must still be
// stamped after that creation: an auditor never reads that a key acted
// after its revocation, and the listing, newest first, is commit order
// (ids and stamps descending together).
func TestAuditStampsFollowCommitOrder(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	ctx := context.Background()
	revoker, creator := postgres.NewStore(pool, nil), postgres.NewStore(pool, nil) // two processes
	user, _, err := revoker.ProvisionUser(ctx, uuid.New(), "order@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "UPDATE owners SET tier = 'pro' WHERE id = $1", user.OwnerID); err != nil {
		t.Fatal(err)
	}
	parent, err := revoker.CreateKey(ctx, &user, keyhub.CreateKeyInput{Name: "parent", Scopes: keyhub.BuiltinScopes}, keyhub.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := creator.KeyForAuth(ctx, apikey.HashHex(parent.Secret))
	if err != nil {
		t.Fatal(err)
	}
	var child keyhub.NewKey
	var once sync.Once
	postgres.SetBeforeLock(revoker, func() {
		// The revoke's transaction has begun; the parent creates a child
		// and commits before the revoke takes its first lock.
		once.Do(func() {
			child, err = creator.CreateKey(ctx, &auth.Principal, keyhub.CreateKeyInput{Name: "child", Scopes: keyhub.BuiltinScopes}, keyhub.RequestMeta{})
			if err != nil {
				t.Errorf("create child: %v", err)
			}
		})
	})
	revoked, _, err := revoker.RevokeKey(ctx, &user, parent.Key.ID, keyhub.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if child.Key.ID == uuid.Nil {
		t.Fatal("the child was not created")
	}
	if !revoked.RevokedAt.After(child.Key.CreatedAt) {
		t.Errorf("parent revoked at %v, before its child was created at %v", revoked.RevokedAt, child.Key.CreatedAt)
	}
	events, _, err := revoker.ListEvents(ctx, user.OwnerID, keyhub.EventFilter{}, keyhub.Page{})
	if err != nil {
		t.Fatal(err)
	}
	var childCreated, parentRevoked *keyhub.Event
	for i := range events {
		e := &events[i]
		if i > 0 && (e.ID >= events[i-1].ID || e.CreatedAt.After(events[i-1].CreatedAt)) {
			t.Errorf("listing out of commit order: event %d (%s, %v) after event %d (%s, %v)",
				e.ID, e.Type, e.CreatedAt, events[i-1].ID, events[i-1].Type, events[i-1].CreatedAt)
		}
		switch {
		case e.KeyID == child.Key.ID && e.Type == keyhub.EventCreated:
			childCreated = e
		case e.KeyID == parent.Key.ID && e.Type == keyhub.EventRevoked:
			parentRevoked = e
		}
	}
	if childCreated == nil || parentRevoked == nil {
		t.Fatalf("events %+v lack the child's creation or the parent's revocation", events)
	}
	if !parentRevoked.CreatedAt.After(childCreated.CreatedAt) {
		t.Errorf("the parent's revocation is stamped %v, not after its child's creation %v", parentRevoked.CreatedAt, childCreated.CreatedAt)
	}
}
