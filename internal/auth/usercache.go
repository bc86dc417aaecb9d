package auth

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// UserStore is the database side of dashboard (JWT) users.
type UserStore interface {
	ProvisionUser(ctx context.Context, userID uuid.UUID, email string) (keyhub.Principal, time.Time, error)
}

// seenEvery is how often a user's last_seen_at is worth writing.
const seenEvery = time.Minute

// userCache remembers provisioned users for a short while, so a dashboard
// session costs one database read per minute rather than one per request.
type userCache struct {
	store UserStore
	users *expirable.LRU[uuid.UUID, *cachedUser]
	seen  *Toucher
	// generation, staleBound and feedDown play the same part as in
	// ApiKeyCache: a tier change must not be undone by a lookup that read
	// the old tier, and while the change feed is down entries are re-read
	// once older than staleBound.
	generation atomic.Uint64
	staleBound time.Duration
	feedDown   atomic.Bool
	now        func() time.Time
}

type cachedUser struct {
	principal keyhub.Principal
	lastSeen  time.Time // as last written or handed to the toucher
	loadedAt  time.Time // when the database said so
}

func newUserCache(store UserStore, size int, ttl, staleBound time.Duration, seen *Toucher, now func() time.Time) *userCache {
	return &userCache{store: store, users: expirable.NewLRU[uuid.UUID, *cachedUser](size, nil, ttl), seen: seen, staleBound: staleBound, now: now}
}

// principal returns the user's principal, provisioning the user (and its
// owner) on first sight.
func (c *userCache) principal(ctx context.Context, userID uuid.UUID, email string) (keyhub.Principal, error) {
	now := c.now()
	gen := c.generation.Load()
	if u, ok := c.users.Get(userID); ok && !(c.feedDown.Load() && now.Sub(u.loadedAt) > c.staleBound) {
		if now.Sub(u.lastSeen) >= seenEvery {
			// Entries are replaced rather than mutated: readers share them.
			// A change heard since the Get must not be undone by the put.
			c.users.Add(userID, &cachedUser{principal: u.principal, lastSeen: now, loadedAt: u.loadedAt})
			if c.generation.Load() != gen {
				c.users.Remove(userID)
			}
			c.markSeen(userID, now)
		}
		return u.principal, nil
	}
	p, lastSeen, err := c.store.ProvisionUser(ctx, userID, email)
	if err != nil {
		return keyhub.Principal{}, err
	}
	if now.Sub(lastSeen) >= seenEvery {
		c.markSeen(userID, now)
		lastSeen = now
	}
	c.users.Add(userID, &cachedUser{principal: p, lastSeen: lastSeen, loadedAt: now})
	if c.generation.Load() != gen { // see ApiKeyCache.keep
		c.users.Remove(userID)
	}
	return p, nil
}

// forget drops the cached principals of a changed owner or user.
func (c *userCache) forget(change keyhub.PrincipalChange) {
	c.generation.Add(1)
	if change.UserID != uuid.Nil {
		c.users.Remove(change.UserID)
		return
	}
	for _, userID := range c.users.Keys() {
		if u, ok := c.users.Peek(userID); ok && u.principal.OwnerID == change.OwnerID {
			c.users.Remove(userID)
		}
	}
}

func (c *userCache) purge() {
	c.generation.Add(1)
	c.users.Purge()
}

func (c *userCache) markSeen(userID uuid.UUID, at time.Time) {
	if c.seen != nil {
		c.seen.Mark(userID, at)
	}
}
