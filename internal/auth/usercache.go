package auth

import (
	"context"
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
}

type cachedUser struct {
	principal keyhub.Principal
	lastSeen  time.Time // as last written or handed to the toucher
}

func newUserCache(store UserStore, size int, ttl time.Duration, seen *Toucher) *userCache {
	return &userCache{store: store, users: expirable.NewLRU[uuid.UUID, *cachedUser](size, nil, ttl), seen: seen}
}

// principal returns the user's principal, provisioning the user (and its
// owner) on first sight.
func (c *userCache) principal(ctx context.Context, userID uuid.UUID, email string) (keyhub.Principal, error) {
	now := time.Now()
	if u, ok := c.users.Get(userID); ok {
		if now.Sub(u.lastSeen) >= seenEvery {
			// Entries are replaced rather than mutated: readers share them.
			c.users.Add(userID, &cachedUser{principal: u.principal, lastSeen: now})
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
	c.users.Add(userID, &cachedUser{principal: p, lastSeen: lastSeen})
	return p, nil
}

func (c *userCache) markSeen(userID uuid.UUID, at time.Time) {
	if c.seen != nil {
		c.seen.Mark(userID, at)
	}
}
