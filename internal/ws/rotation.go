package ws

import (
	"context"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/handover"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// inboxFor is the handover inbox of a connection opened with p: a key's
// connection can receive its rotated secret; a session has no key to
// rotate.
func inboxFor(p *keyhub.Principal) *handover.Inbox {
	if !p.IsKey() {
		return nil
	}
	inbox, err := handover.NewInbox()
	if err != nil {
		return nil // crypto/rand does not fail; the connection just takes no secret
	}
	return inbox
}

// KeyDelivered implements keyhub.KeyDeliveryObserver: a secret sealed to
// one of this process's connections is opened and sent to it as
// "key_rotated", once, however many times the delivery is heard (the
// writer and the change feed both announce it). Deliveries for
// connections held elsewhere are ignored: only the holder can open them.
// The secret is never logged.
func (h *Hub) KeyDelivered(d keyhub.KeyDelivery) {
	h.mu.Lock()
	c, ok := h.conns[d.ConnectionID]
	h.mu.Unlock()
	if !ok || c.principal.OwnerID != d.OwnerID || !c.principal.IsKey() || c.principal.KeyID != d.OldKeyID || c.inbox == nil {
		return
	}
	if last := c.rotatedTo.Load(); last != nil && *last == d.NewKeyID {
		return
	}
	secret, err := c.inbox.Open(d.Sealed, d.ConnectionID, d.NewKeyID)
	if err != nil {
		h.log.Warn("websocket: a rotated key sealed to this connection does not open", "connection_id", d.ConnectionID, "key_id", d.NewKeyID, "err", err)
		return
	}
	newKeyID := d.NewKeyID
	if prev := c.rotatedTo.Swap(&newKeyID); prev != nil && *prev == newKeyID {
		return // the other announcement won the race
	}
	msg := api.WSKeyRotated{Type: api.WSTypeKeyRotated, Key: secret, KeyID: newKeyID, GraceUntil: api.Timestamp(d.GraceUntil), Reason: api.RotationAutomatic}
	if d.ActorUserID != uuid.Nil {
		msg.Reason, msg.ActorUserID = api.RotationRefresh, &d.ActorUserID
		if d.ActorKeyID != uuid.Nil {
			msg.ActorKeyID = &d.ActorKeyID
		}
	}
	// Off the announcer's goroutine (the feed's, or a request's): a slow
	// peer must not hold either.
	go func() {
		if err := h.send(context.Background(), c.ws, msg); err != nil {
			c.fail("write failed")
			return
		}
		h.log.Info("websocket: rotated key delivered", "connection_id", c.id, "old_key_id", d.OldKeyID, "key_id", newKeyID)
	}()
}

var _ keyhub.KeyDeliveryObserver = (*Hub)(nil)
