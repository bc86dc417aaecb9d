package ws

import (
	"context"
	"slices"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// The change observer: the hub implements keyhub.ChangeObserver, so a key
// revoked, disabled, narrowed or given an expiry, a user or tier changed,
// or an event written anywhere reaches the open connections it concerns;
// while the change feed is down they are re-checked in the database.

// KeyChanged implements keyhub.ChangeObserver: a key that stopped working
// closes its connections with 4001, and so do its connections from outside
// networks the key was narrowed to, and those that need a scope the key
// no longer holds (reasonScopeRemoved); a key given an expiry (the grace
// period of a refresh) ends its connections then.
func (h *Hub) KeyChanged(change keyhub.KeyChange) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if change.Ended {
		h.endedKeys.remember(change.KeyID, struct{}{}, now)
	} else { // an ended key is refused anyway (endedKeys)
		h.keyScopes.remember(change.KeyID, change.Scopes, now)
	}
	if change.Disabled {
		h.disabledKeys.remember(change.KeyID, struct{}{}, now)
	} else {
		h.disabledKeys.forget(change.KeyID)
	}
	for c := range h.byOwner[change.OwnerID] {
		if !c.principal.IsKey() || c.principal.KeyID != change.KeyID {
			continue
		}
		switch {
		case change.Ended:
			c.kill(StatusKeyRevoked, "key revoked")
		case change.Disabled:
			c.kill(StatusKeyRevoked, "key disabled")
		case !keyhub.NetAllowed(change.AllowedNets, c.client):
			c.kill(StatusKeyRevoked, "address not allowed")
		case !c.narrow(change.Scopes):
			c.kill(StatusKeyRevoked, reasonScopeRemoved)
		case change.ExpiresAt != nil:
			c.keyExpiry.Store(change.ExpiresAt)
			c.update()
		}
	}
}

// reasonScopeRemoved is the close reason (with 4001) of a socket whose key
// lost the scope it was admitted with (ws:connect, a gateway route's, or
// events:read while subscribed): like a revoke, reconnecting would be
// refused (403 INSUFFICIENT_SCOPE), so clients do not retry.
const reasonScopeRemoved = "scope removed"

// PrincipalChanged implements keyhub.ChangeObserver. A user whose owner
// changed or who is gone loses its sessions (4000: reconnecting resolves
// the user afresh); an owner's tier is re-read by Run, off the feed's
// goroutine.
func (h *Hub) PrincipalChanged(change keyhub.PrincipalChange) {
	if change.UserID != uuid.Nil {
		h.mu.Lock()
		for c := range h.byOwner[change.OwnerID] {
			if !c.principal.IsKey() && c.principal.UserID == change.UserID {
				c.kill(StatusSessionExpired, "user changed")
			}
		}
		h.mu.Unlock()
	}
	h.askRecheck()
}

// FeedDown implements keyhub.ChangeObserver: open connections are
// re-checked at once (a key revoked while the feed was silent, before it
// was declared down, would otherwise live up to one more stale bound), and
// then every stale bound until the feed is back.
func (h *Hub) FeedDown() {
	if !h.feedDown.Swap(true) {
		h.askRecheck()
	}
}

// FeedUp implements keyhub.ChangeObserver: changes made while the feed was
// down were not heard, so every open connection is checked once.
func (h *Hub) FeedUp() {
	h.feedDown.Store(false)
	h.askRecheck()
}

func (h *Hub) askRecheck() {
	select {
	case h.recheck <- struct{}{}:
	default:
	}
}

// recheckAll reads the state of every open connection's key and owner and
// applies what changed: ended keys close, new expiries and tiers apply.
func (h *Hub) recheckAll(ctx context.Context) error {
	h.mu.Lock()
	keyIDs := make([]uuid.UUID, 0, len(h.conns))
	ownerIDs := make([]uuid.UUID, 0, len(h.byOwner))
	seen := make(map[uuid.UUID]bool)
	for _, c := range h.conns {
		if c.principal.IsKey() && !seen[c.principal.KeyID] {
			seen[c.principal.KeyID] = true
			keyIDs = append(keyIDs, c.principal.KeyID)
		}
	}
	for ownerID := range h.byOwner {
		ownerIDs = append(ownerIDs, ownerID)
	}
	h.mu.Unlock()
	if len(ownerIDs) == 0 {
		return nil
	}
	if len(keyIDs) > 0 {
		states, err := h.store.KeyStates(ctx, keyIDs)
		if err != nil {
			return err
		}
		for _, change := range states {
			h.KeyChanged(change)
		}
	}
	tiers, err := h.store.OwnerTiers(ctx, ownerIDs)
	if err != nil {
		return err
	}
	h.applyTiers(tiers)
	return nil
}

// applyTiers gives open connections their owner's current tier. Where a
// lowered tier allows fewer connections than are open, the newest close
// first (1008): the longest-standing daemons keep running.
func (h *Hub) applyTiers(tiers map[uuid.UUID]keyhub.Tier) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ownerID, tier := range tiers {
		var changed []*conn
		for c := range h.byOwner[ownerID] {
			if c.currentTier() != tier {
				c.tier.Store(tier)
				c.update()
				changed = append(changed, c)
			}
		}
		if len(changed) == 0 {
			continue
		}
		bySlot := make(map[slotKey][]*conn)
		for c := range h.byOwner[ownerID] {
			key := slotKeyOf(&c.principal)
			bySlot[key] = append(bySlot[key], c)
		}
		limit := tier.Limits().WSConnections
		for _, conns := range bySlot {
			if len(conns) <= limit {
				continue
			}
			slices.SortFunc(conns, func(a, b *conn) int { return b.connectedAt.Compare(a.connectedAt) })
			for _, c := range conns[:len(conns)-limit] {
				c.kill(websocket.StatusPolicyViolation, "connection limit of the tier lowered")
			}
		}
	}
}

// EventWritten implements keyhub.ChangeObserver: subscribed connections of
// the event's owner receive it. An `expiring` event also warns the
// connections opened with that key, subscribed or not (key_expiring): the
// daemon holding the key is the one that must replace it.
func (h *Hub) EventWritten(e keyhub.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.byOwner[e.OwnerID] {
		if c.subscribed.Load() {
			c.deliver(&e) // shared, never modified: a pointer per queued event, not a copy
		}
	}
	if warning, ok := keyhub.ExpiryWarningOf(e); ok {
		msg := expiringMessage(e.KeyID, warning)
		for c := range h.byOwner[e.OwnerID] {
			// A relayed socket speaks its upstream's protocol. One told of
			// this warning after its welcome is not told again.
			if c.principal.IsKey() && c.principal.KeyID == e.KeyID && c.upstream == nil && c.firstTold(warning) {
				// Off the announcer's goroutine, as KeyDelivered: a slow
				// peer must not hold the hub (or the feed).
				go func() {
					if err := h.send(context.Background(), c.ws, msg); err != nil {
						c.fail("write failed")
					}
				}()
			}
		}
	}
}
