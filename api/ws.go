package api

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// The WebSocket endpoint's REST companions and the protocol's messages.

// WSTicket answers POST /v1/ws/tickets: pass Ticket as ?ticket= to GET /v1/ws.
type WSTicket struct {
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expires_in"`
}

// WSConnection describes an open connection in GET /v1/ws/connections.
type WSConnection struct {
	ID             uuid.UUID `json:"id"`
	AuthMethod     string    `json:"auth_method"`
	KeyPrefix      string    `json:"key_prefix,omitempty"`
	MachineID      string    `json:"machine_id,omitempty"`
	Hostname       string    `json:"hostname,omitempty"`
	RemoteAddr     string    `json:"remote_addr"`
	ConnectedAt    time.Time `json:"connected_at"`
	LastActivityAt time.Time `json:"last_activity_at"`
}

// WSConnectionList is the body of GET /v1/ws/connections.
type WSConnectionList struct {
	Data []WSConnection `json:"data"`
}

// WSLimits are the tier's limits a welcome message announces.
type WSLimits struct {
	MaxConnections    int   `json:"max_connections"`
	MessagesPerMinute int   `json:"messages_per_minute"`
	MaxMessageBytes   int64 `json:"max_message_bytes"`
	SessionSeconds    int64 `json:"session_seconds"`
}

// WSWelcome is the server's first message on an authenticated connection.
type WSWelcome struct {
	Type         string    `json:"type"`
	ConnectionID uuid.UUID `json:"connection_id"`
	Tier         string    `json:"tier"`
	Limits       WSLimits  `json:"limits"`
	// ExpiresAt is when the server ends the session (close 4000, or 4001
	// when the key expires first).
	ExpiresAt time.Time `json:"expires_at"`
	// KeyID is the key the connection authenticated with (nil for a
	// session): a daemon knows its key's own audit events by it.
	KeyID *uuid.UUID `json:"key_id,omitempty"`

	Raw json.RawMessage `json:"-"` // the message as received
}

// WSMessage is any message the server sends after the welcome: the fields
// of every type side by side, each set only for its types. The server
// encodes exactly this type, so what the client decodes is what was sent.
// Raw keeps the whole message as received.
type WSMessage struct {
	// Type is "pong", "whoami", "subscribed", "unsubscribed", "event" or
	// "error"; "key_rotated" is a WSKeyRotated; "key_expiring" is a
	// WSKeyExpiring (the Connector decodes it for OnKeyExpiring).
	Type string `json:"type"`
	// ID echoes a ping's id.
	ID json.RawMessage `json:"id,omitempty"`
	// Topic is set on subscribed and unsubscribed.
	Topic string `json:"topic,omitempty"`
	// Event is set on "event".
	Event *Event `json:"event,omitempty"`
	// Code, Message and RetryAfterMs are set on "error".
	Code         string `json:"code,omitempty"`
	Message      string `json:"message,omitempty"`
	RetryAfterMs int64  `json:"retry_after_ms,omitempty"`
	// Me is set on "whoami", whose fields are those of GET /v1/me beside
	// the type.
	*Me

	Raw json.RawMessage `json:"-"`
}

// WSClientMessage is a message a client sends after the welcome: "ping"
// (with an optional ID, echoed by the pong), "whoami", "subscribe" or
// "unsubscribe" (with a Topic, "events").
type WSClientMessage struct {
	Type  string          `json:"type"`
	ID    json.RawMessage `json:"id,omitempty"`
	Topic string          `json:"topic,omitempty"`
}

// WSTypeKeyRotated is the type of WSKeyRotated.
const WSTypeKeyRotated = "key_rotated"

// WSKeyRotated is sent to every open connection of a key that was
// refreshed with "deliver": "connections" (by its owner, or by the
// auto_rotate_before sweep): the replacement's secret, which only these
// connections receive. The old key, and this connection, keep working
// until GraceUntil: reconnect with Key before then, and store it where
// the old one was.
type WSKeyRotated struct {
	Type       string    `json:"type"`
	Key        string    `json:"key"`
	KeyID      uuid.UUID `json:"key_id"`
	GraceUntil time.Time `json:"grace_until"`
	// Reason is RotationAutomatic (keyhub, the key's auto_rotate_before)
	// or RotationRefresh (a refresh with "deliver": "connections"), whose
	// actor ActorUserID is, with ActorKeyID when a key made it: who
	// rotated the key, as its refreshed event records it.
	Reason      string     `json:"reason"`
	ActorUserID *uuid.UUID `json:"actor_user_id,omitempty"`
	ActorKeyID  *uuid.UUID `json:"actor_key_id,omitempty"`
}

// Reasons of a WSKeyRotated.
const (
	RotationAutomatic = "auto_rotate"
	RotationRefresh   = "refresh"
)

// WSTypeKeyExpiring is the type of WSKeyExpiring.
const WSTypeKeyExpiring = "key_expiring"

// WSKeyExpiring is sent, unasked, to every open connection of a key when
// the key enters one of its expiry warning windows (7 days and 1 day
// before ExpiresAt; the owner gets an `expiring` event): replace the key
// (refresh it, or have its owner do so) before ExpiresAt.
type WSKeyExpiring struct {
	Type      string    `json:"type"`
	KeyID     uuid.UUID `json:"key_id"`
	ExpiresAt time.Time `json:"expires_at"`
	// WindowSeconds is the window entered (604800 or 86400), as the
	// event's details say: the 1-day warning of an expiry is a new
	// warning after the 7-day one, with the same key and expiry.
	WindowSeconds int64 `json:"window_seconds"`
}
