package ws

import (
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// IssueTicket signs a 30-second, single-use ticket for p, for clients
// that cannot set headers on the upgrade (browsers). A key's ticket names
// the key, which is re-read when the ticket is used: the key's state then
// counts.
func (h *Hub) IssueTicket(p *keyhub.Principal) api.WSTicket {
	t := Ticket{ID: uuid.New(), UserID: p.UserID, OwnerID: p.OwnerID, ExpiresAt: time.Now().Add(TicketTTL)}
	if p.IsKey() {
		t.KeyID = p.KeyID
	} else {
		t.CredentialExpiresAt = p.ExpiresAt
	}
	return api.WSTicket{Ticket: h.tickets.Sign(t), ExpiresIn: int(TicketTTL / time.Second)}
}

// Connections lists the open connections of an owner on this process,
// oldest first.
func (h *Hub) Connections(ownerID uuid.UUID) []api.WSConnection {
	out := []api.WSConnection{}
	h.mu.Lock()
	for c := range h.byOwner[ownerID] {
		out = append(out, api.WSConnection{
			ID:             c.id,
			AuthMethod:     string(c.principal.Method),
			KeyPrefix:      c.principal.KeyPrefix,
			MachineID:      c.machineID,
			Hostname:       c.hostname,
			RemoteAddr:     c.client.String(),
			ConnectedAt:    api.Timestamp(c.connectedAt),
			LastActivityAt: api.Timestamp(time.Unix(0, c.lastActivity.Load())),
		})
	}
	h.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].ConnectedAt.Equal(out[j].ConnectedAt) {
			return out[i].ConnectedAt.Before(out[j].ConnectedAt)
		}
		return out[i].ID.String() < out[j].ID.String()
	})
	return out
}

// ConnectionKey is the key the owner's connection id authenticated with
// (uuid.Nil for a user session); false when it is not open here.
func (h *Hub) ConnectionKey(ownerID, id uuid.UUID) (uuid.UUID, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.conns[id]
	if !ok || c.principal.OwnerID != ownerID {
		return uuid.Nil, false
	}
	if !c.principal.IsKey() {
		return uuid.Nil, true
	}
	return c.principal.KeyID, true
}

// CloseConnection closes one of the owner's connections with 4002 and
// reports whether it was open; another owner's connection is as absent
// as a missing one.
func (h *Hub) CloseConnection(ownerID, id uuid.UUID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.conns[id]
	if !ok || c.principal.OwnerID != ownerID {
		return false
	}
	c.kill(StatusClosedByOwner, "closed by owner")
	return true
}
