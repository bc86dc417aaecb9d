package ws

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// Expiry warnings on the socket: a key's connections are told
// (key_expiring) when the sweep warns of the key's expiry, and a
// connection opened after that warning is told right after its welcome.
// Which keys are warned, and when, is the sweep's decision alone: the
// socket repeats what the ledger says was given.

// expiryLookupTimeout bounds the ledger lookup after a welcome: a slow
// database delays the connection's first reads by at most this, and the
// warning is then skipped, not the connection.
const expiryLookupTimeout = 5 * time.Second

// tellExpiryWarningGiven sends key_expiring to a connection that has just
// been welcomed when the sweep already warned of its key's current expiry
// (the nearest window given). A key further from its expiry than the
// largest window cannot have been warned: no lookup for it.
//
// Every new connection is told, a reconnect too: the server cannot tell a
// daemon reconnecting after a blip from a new process that heard nothing
// (a restart, a second copy; machine_id is optional and chosen by the
// client, and there is no session to resume), and only the daemon knows
// what it already heard. So the daemon deduplicates (api/client's
// connector reports each warning once per connector), and the server
// stays simple: one small message per connection of a key within days of
// its expiry.
func (h *Hub) tellExpiryWarningGiven(c *conn) {
	p := &c.principal
	if !p.IsKey() || c.upstream != nil || p.ExpiresAt.IsZero() || time.Until(p.ExpiresAt) > keyhub.ExpiryWarningHorizon() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), expiryLookupTimeout)
	defer cancel()
	warning, given, err := h.store.ExpiryWarningGiven(ctx, p.KeyID)
	if err != nil {
		h.log.Warn("expiry warning lookup", "connection_id", c.id, "key_prefix", p.KeyPrefix, "err", err)
		return
	}
	if given && c.firstTold(warning) {
		if err := h.send(context.Background(), c.ws, expiringMessage(p.KeyID, warning)); err != nil {
			c.fail("write failed")
		}
	}
}

// firstTold records that the connection is told of warning and reports
// whether it had not been told of it, or of a nearer window of the same
// expiry, before: the lookup after the welcome and the sweep's event can
// race, and a connection hears each warning once.
func (c *conn) firstTold(warning keyhub.ExpiryWarning) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if told := c.toldExpiry; told != nil && told.ExpiresAt.Equal(warning.ExpiresAt) && told.Window <= warning.Window {
		return false
	}
	c.toldExpiry = &warning
	return true
}

// expiringMessage is key_expiring for a key's warning.
func expiringMessage(keyID uuid.UUID, warning keyhub.ExpiryWarning) api.WSKeyExpiring {
	return api.WSKeyExpiring{Type: api.WSTypeKeyExpiring, KeyID: keyID, ExpiresAt: api.Timestamp(warning.ExpiresAt),
		WindowSeconds: int64(warning.Window / time.Second)}
}
