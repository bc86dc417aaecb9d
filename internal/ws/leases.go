package ws

import (
	"context"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/handover"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// Leases: the cluster-wide count of connections. Each admitted connection
// holds a row in the database (its lease), renewed by this process's
// heartbeat, so a key's cap holds across every process serving it.

// lease is what the hub keeps of one of its leases to renew it; the rest
// of a keyhub.WSLease is the map's key (the id) or made at renewal (the
// handover key, a copy from the inbox). It is kept small because there is
// one per open socket: a whole keyhub.WSLease with its own copy of the key
// cost ≈400 B a socket (map slots included) against ≈150 B for this.
type lease struct {
	slotID, ownerID uuid.UUID
	openedAt        time.Time
	cap             int
	inbox           *handover.Inbox // nil for a connection that takes no secret
}

// reserve takes one of p's connection slots on every process, or refuses
// with TOO_MANY_CONNECTIONS: first in this process (no database round trip
// for a refusal), then as a lease in the database, which counts the
// connections of all processes. It returns the connection's id (its
// lease's). release gives the slot back; calling it twice is safe. inbox
// (nil for connections that take no secret) is published with the lease,
// so that a refresh on any process can seal a rotated key to it.
func (h *Hub) reserve(ctx context.Context, p *keyhub.Principal, inbox *handover.Inbox) (id uuid.UUID, release func(), err error) {
	releaseLocal, err := h.reserveLocal(p)
	if err != nil {
		return uuid.Nil, nil, err
	}
	key := slotKeyOf(p)
	slotID := key.keyID
	if slotID == uuid.Nil {
		slotID = key.userID
	}
	limit := p.Tier.Limits().WSConnections
	id = uuid.New()
	openedAt, admitted, err := h.store.AcquireWSLease(ctx, id, slotID, p.OwnerID, h.processID, limit, h.leaseTTL, inbox.PublicKey())
	if err != nil || !admitted {
		releaseLocal()
		if err == nil {
			err = tooManyConnections(p, limit)
		}
		return uuid.Nil, nil, err
	}
	h.mu.Lock()
	h.leases[id] = lease{slotID: slotID, ownerID: p.OwnerID, openedAt: openedAt, cap: limit, inbox: inbox}
	h.mu.Unlock()
	var once sync.Once
	return id, func() {
		once.Do(func() {
			releaseLocal()
			h.mu.Lock()
			delete(h.leases, id)
			h.mu.Unlock()
			// The request's context may be gone: the lease must go anyway.
			releaseCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := h.store.ReleaseWSLease(releaseCtx, id); err != nil {
				h.log.Warn("websocket: release lease (it expires on its own)", "connection_id", id, "err", err)
			}
		})
	}, nil
}

// renewLeases extends this process's leases and closes its connections
// that rank past their slot's cap among every process's (after a partition
// longer than the lease, or a lowered tier): the newest over the cap close
// (1008), wherever they are, and the longest-standing daemons keep
// running. A lease released while the renewal was on its way may have
// been written back by it: such a row is deleted again, or its slot would
// stay taken until it expired.
func (h *Hub) renewLeases(ctx context.Context) error {
	h.mu.Lock()
	leases := make([]keyhub.WSLease, 0, len(h.leases))
	for id, l := range h.leases {
		if c, ok := h.conns[id]; ok { // the cap of its tier as it is now
			l.cap = c.currentTier().Limits().WSConnections
		}
		leases = append(leases, keyhub.WSLease{ID: id, SlotID: l.slotID, OwnerID: l.ownerID, OpenedAt: l.openedAt, Cap: l.cap, HandoverKey: l.inbox.PublicKey()})
	}
	h.mu.Unlock()
	if len(leases) == 0 {
		return nil
	}
	overCap, err := h.store.RenewWSLeases(ctx, h.processID, h.leaseTTL, leases)
	if err != nil {
		return err
	}
	h.mu.Lock()
	for _, id := range overCap {
		if c, ok := h.conns[id]; ok {
			c.kill(websocket.StatusPolicyViolation, "over the connection limit of the tier")
		}
	}
	var gone []uuid.UUID
	for _, l := range leases {
		if _, ok := h.leases[l.ID]; !ok {
			gone = append(gone, l.ID)
		}
	}
	h.mu.Unlock()
	for _, id := range gone {
		if err := h.store.ReleaseWSLease(ctx, id); err != nil {
			return err
		}
	}
	return nil
}
