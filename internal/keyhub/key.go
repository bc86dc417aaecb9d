package keyhub

import (
	"encoding/json"
	"net/netip"
	"slices"
	"time"

	"github.com/google/uuid"
)

// KeyStatus is where a key is in its life.
type KeyStatus string

// Key statuses, as listed and filtered by the API.
const (
	KeyActive  KeyStatus = "active"
	KeyRevoked KeyStatus = "revoked"
	KeyExpired KeyStatus = "expired"
)

// Valid reports whether s is one of the statuses a key can have.
func (s KeyStatus) Valid() bool {
	return s == KeyActive || s == KeyRevoked || s == KeyExpired
}

// KeyFilter narrows a key listing.
type KeyFilter struct {
	// Status lists only the keys with this status, as of the database's
	// clock when the page is read; empty lists every key.
	Status KeyStatus
}

// Key is an API key as stored: its secret is never part of it.
type Key struct {
	ID         uuid.UUID
	OwnerID    uuid.UUID
	UserID     uuid.UUID
	Name       string
	Prefix     string
	Scopes     Scopes
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
	// LastUsedFrom is where the use LastUsedAt records came from: the
	// client address as the trusted proxies tell it and the User-Agent;
	// zero parts are unknown.
	LastUsedFrom RequestMeta
	RevokedAt    *time.Time
	ReplacedBy   *uuid.UUID
	// LineageID is the first key of this key's chain of refreshes (the
	// key's own id when it replaced none): every successor shares it.
	LineageID uuid.UUID
	// AutoRotateBefore asks the sweeper to refresh the key this long
	// before it expires, delivering the secret to its connections; zero:
	// never.
	AutoRotateBefore time.Duration
	// Metadata is the owner's JSON object (at most MaxMetadataBytes),
	// returned on reads and never interpreted.
	Metadata json.RawMessage
	// AllowedCIDRs are the networks the key may be used from; empty: any.
	AllowedCIDRs []netip.Prefix
	// DisabledAt is when the key itself was disabled; nil when it is not.
	DisabledAt *time.Time
	// Disabled is set where the writer knows that the key is refused as
	// disabled: it, or a key it was obtained through, is disabled.
	Disabled bool
	// Status is the key's status as the database computed it when it read
	// the row (keyhub_key_status, on the database's clock, the same value
	// its filter used): set by listings, empty on keys a write returns,
	// which their caller judges with StatusAt at its own instant.
	Status KeyStatus
	// CreatedBy is who created the key, where the reader looked it up
	// (the actor of its created event); nil when keyhub made it itself.
	CreatedBy *KeyCreator
}

// KeyCreator is who created a key: a user, acting with a session or with
// one of its keys (KeyID and KeyPrefix then name that key). Email is
// empty when the user has none, or no longer belongs to the key's owner.
type KeyCreator struct {
	UserID    uuid.UUID
	Email     string
	KeyID     *uuid.UUID
	KeyPrefix string
}

// StatusAt reports the key's status at the instant at: the rule of the
// SQL function keyhub_key_status, for decisions taken in Go at a known
// instant (a write transaction's stamp). A revoked key stays revoked even
// when its expiry has passed since.
func (k *Key) StatusAt(at time.Time) KeyStatus {
	switch {
	case k.RevokedAt != nil:
		return KeyRevoked
	case k.ExpiresAt != nil && !at.Before(*k.ExpiresAt):
		return KeyExpired
	default:
		return KeyActive
	}
}

// EventType names what happened to a key.
type EventType string

// Event types, as stored in api_key_events.event_type. The schema also
// allows "used", which nothing writes: a key's last use is its
// last_used_at, and an event per request would cost a write per request.
// "expired" is written by the expiry sweeper (postgres.Store.RecordExpiredKeys).
const (
	EventCreated   EventType = "created"
	EventRefreshed EventType = "refreshed"
	EventRevoked   EventType = "revoked"
	EventExpired   EventType = "expired"
	// EventConnectionClosed: an owner closed a WebSocket connection opened
	// with the key (DELETE /v1/ws/connections/{id}).
	EventConnectionClosed EventType = "connection_closed"
	// EventLeaked: a secret scanner found the key in public (GitHub's
	// report, with the URL where it was found); the owner's leak policy
	// says whether a `revoked` event follows.
	EventLeaked EventType = "leaked"
	// EventUpdated: PATCH /v1/keys/{id} changed the fields its details list.
	EventUpdated EventType = "updated"
	// EventDisabled and EventEnabled: the key was disabled or enabled again.
	EventDisabled EventType = "disabled"
	EventEnabled  EventType = "enabled"
	// EventExpiring: the key entered one of its expiry warning windows
	// (ExpiryWarningWindows), written once per key, window and expiry by
	// the expiry sweeper (postgres.Store.RecordExpiryWarnings).
	EventExpiring EventType = "expiring"
)

// EventTypes are the known event types, in the order the API lists them.
var EventTypes = []EventType{EventCreated, EventRefreshed, EventRevoked, EventExpired, EventConnectionClosed,
	EventLeaked, EventUpdated, EventDisabled, EventEnabled, EventExpiring}

// Valid reports whether t is a known event type.
func (t EventType) Valid() bool { return slices.Contains(EventTypes, t) }

// Event is one entry of a key's audit trail.
type Event struct {
	ID          int64
	KeyID       uuid.UUID
	OwnerID     uuid.UUID
	ActorUserID *uuid.UUID
	ActorKeyID  *uuid.UUID // the key that acted; nil for a dashboard user or the system
	// ActorEmail is the acting user's email while that user belongs to the
	// event's owner; empty when unknown (no actor, no email, another owner).
	ActorEmail string
	Type       EventType
	IP         netip.Addr // zero when unknown
	UserAgent  string
	Details    json.RawMessage // a JSON object, or nil
	CreatedAt  time.Time
}

// RequestMeta is who did something and from where: what the audit trail
// records about the request behind a change.
type RequestMeta struct {
	IP        netip.Addr
	UserAgent string
}
