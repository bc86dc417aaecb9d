package ws

import (
	"sync"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// The registry: the connections open on this process, counted per key (per
// user for JWT connections) against the tier's cap before the upgrade, and
// made visible to revocation, events, listing and shutdown once they run.

// slotKey is what a connection limit counts: the key, or the user for
// JWT connections.
type slotKey struct {
	keyID  uuid.UUID
	userID uuid.UUID
}

func slotKeyOf(p *keyhub.Principal) slotKey {
	if p.IsKey() {
		return slotKey{keyID: p.KeyID}
	}
	return slotKey{userID: p.UserID}
}

var (
	errShuttingDown = keyhub.Errorf(keyhub.CodeNotReady, "the server is shutting down; reconnect to another instance")
	errRevoked      = keyhub.Errorf(keyhub.CodeKeyRevoked, "the API key has been revoked")
)

func tooManyConnections(p *keyhub.Principal, limit int) error {
	who := "API key"
	if !p.IsKey() {
		who = "user"
	}
	return keyhub.Errorf(keyhub.CodeTooManyConnections, "this %s already has %d open connection(s), the limit of the %s tier", who, limit, p.Tier)
}

// reserveLocal counts p's connections on this process.
func (h *Hub) reserveLocal(p *keyhub.Principal) (release func(), err error) {
	key := slotKeyOf(p)
	limit := p.Tier.Limits().WSConnections
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shuttingDown {
		return nil, errShuttingDown
	}
	if h.slots[key] >= limit {
		return nil, tooManyConnections(p, limit)
	}
	h.slots[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.slots[key]--; h.slots[key] <= 0 {
				delete(h.slots, key)
			}
		})
	}, nil
}

// register makes c visible to revocation, events, listing and shutdown.
// It refuses a connection whose key ended after it was resolved, so a
// revocation racing with the upgrade cannot leave a socket open, and
// closes one whose key lost its scope meanwhile.
func (h *Hub) register(c *conn) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shuttingDown {
		return errShuttingDown
	}
	if c.principal.IsKey() {
		if _, ended := h.endedKeys.lookup(c.principal.KeyID); ended {
			return errRevoked
		}
		if _, disabled := h.disabledKeys.lookup(c.principal.KeyID); disabled {
			return keyhub.ErrKeyDisabled
		}
	}
	h.conns[c.id] = c
	if held, ok := h.keyScopes.lookup(c.principal.KeyID); ok && c.principal.IsKey() && !c.narrow(held) {
		c.kill(StatusKeyRevoked, reasonScopeRemoved)
	}
	owned := h.byOwner[c.principal.OwnerID]
	if owned == nil {
		owned = make(map[*conn]struct{})
		h.byOwner[c.principal.OwnerID] = owned
	}
	owned[c] = struct{}{}
	h.active.Add(1)
	return nil
}

func (h *Hub) unregister(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conns, c.id)
	if owned := h.byOwner[c.principal.OwnerID]; owned != nil {
		delete(owned, c)
		if len(owned) == 0 {
			delete(h.byOwner, c.principal.OwnerID)
		}
	}
	h.active.Done()
}
