package keyhub

import (
	"context"
	"encoding/json"
	"net/netip"
	"time"

	"github.com/google/uuid"
)

// MaxRefreshGrace is the longest an old key may keep working after a refresh.
const MaxRefreshGrace = 24 * time.Hour

// NewKey is a key with its secret: what a create or refresh returns, once.
type NewKey struct {
	Key    Key
	Secret string
}

// CreateKeyInput is a validated request for a new key.
type CreateKeyInput struct {
	Name      string
	Scopes    Scopes
	ExpiresAt *time.Time
	// AutoRotateBefore marks the key for automatic rotation (zero: none).
	AutoRotateBefore time.Duration
	// Metadata (nil: {}) and AllowedCIDRs (nil: any network) are the
	// key's controls, validated.
	Metadata     json.RawMessage
	AllowedCIDRs []netip.Prefix
	// SingleKey applies the seed API's rule: refuse with KEY_ALREADY_EXISTS
	// while the user has any active key, whatever the tier allows.
	SingleKey bool
}

// RefreshInput is a validated request to rotate a key.
type RefreshInput struct {
	// Name of the replacement; empty keeps the old key's name.
	Name string
	// Grace keeps the old key working this long (at most MaxRefreshGrace);
	// zero revokes it at once.
	Grace time.Duration
	// Deliver hands the new secret to the open connections of the old key
	// (sealed to each, see package handover) instead of to the caller;
	// refused with NO_OPEN_CONNECTIONS when none is open.
	Deliver bool
	// AutoRotateBefore sets the replacement's auto_rotate_before; nil
	// keeps the old key's, zero removes it.
	AutoRotateBefore *time.Duration
}

// Refreshed is the outcome of a rotation.
type Refreshed struct {
	New NewKey
	Old Key
	// DeliveredTo is how many connections the new secret was sealed to
	// (Deliver); the caller then never sees the secret.
	DeliveredTo int
}

// KeyDelivery is a new secret on its way to one open connection of the
// key it replaces, sealed to that connection (package handover): what a
// refresh with Deliver publishes once it has committed, on its own process
// and, through the change feed, on every other. Only the process holding
// the connection can open it.
type KeyDelivery struct {
	ConnectionID uuid.UUID
	OwnerID      uuid.UUID
	OldKeyID     uuid.UUID
	NewKeyID     uuid.UUID
	// GraceUntil is when the old key stops working.
	GraceUntil time.Time
	Sealed     []byte
	// ActorUserID and ActorKeyID are who refreshed the key (the refreshed
	// event's actor: a user, and the key it used if any); both zero when
	// keyhub rotated it on its own (auto_rotate_before). The daemon is
	// told, so that whoever watches it sees who rotated its key.
	ActorUserID, ActorKeyID uuid.UUID
}

// KeyDeliveryObserver is a change observer that also hands sealed
// secrets to the connections it holds (the WebSocket hub). Deliveries may
// arrive twice (writer and feed): it delivers each once.
type KeyDeliveryObserver interface {
	KeyDelivered(KeyDelivery)
}

// Page limits, for every listing.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 200
)

// Page asks for one page of a listing: at most Limit rows after Cursor.
type Page struct {
	Limit  int
	Cursor string // opaque, from the previous page's next cursor
}

// Size is the number of rows the page holds at most: Limit within
// [1, MaxPageLimit], DefaultPageLimit when unset.
func (p Page) Size() int {
	switch {
	case p.Limit <= 0:
		return DefaultPageLimit
	case p.Limit > MaxPageLimit:
		return MaxPageLimit
	}
	return p.Limit
}

// EventFilter narrows an audit trail listing.
type EventFilter struct {
	KeyID *uuid.UUID
	Types []EventType
	Since *time.Time // inclusive
	Until *time.Time // exclusive
}

// AuthKey is what verifying a presented key needs to know about it.
type AuthKey struct {
	Principal Principal
	RevokedAt *time.Time
	// Disabled: the key, or a key it was obtained through, is disabled.
	Disabled bool
}

// KeyService is the key lifecycle and its audit trail: what the REST API
// does with keys. Every change writes its audit event in the same
// transaction as the change.
//
// The principal p of CreateKey, RefreshKey and RevokeKey is the acting
// credential as the caller's cache remembers it. Writes never trust it:
// they re-read the acting key (or user) inside their own transaction and
// refuse one that is revoked, expired or gone (KEY_REVOKED, KEY_EXPIRED,
// UNKNOWN_API_KEY, INVALID_TOKEN), and apply the invariants on keys
// (README, "Invariants") to what the database holds, not to p.
type KeyService interface {
	CreateKey(ctx context.Context, p *Principal, in CreateKeyInput, meta RequestMeta) (NewKey, error)
	RefreshKey(ctx context.Context, p *Principal, keyID uuid.UUID, in RefreshInput, meta RequestMeta) (Refreshed, error)
	// RevokeKey reports alreadyRevoked, changing nothing, for a key that
	// was revoked before.
	RevokeKey(ctx context.Context, p *Principal, keyID uuid.UUID, meta RequestMeta) (key Key, alreadyRevoked bool, err error)
	// GetKey answers NOT_FOUND for another owner's key, exactly as for a
	// missing one.
	GetKey(ctx context.Context, ownerID, keyID uuid.UUID) (Key, error)
	// ActiveKeyOfUser is the user's newest active key: the single-key
	// (seed) API's notion of "the" key.
	ActiveKeyOfUser(ctx context.Context, p *Principal) (Key, error)
	// ListKeys returns a page of the owner's keys that f lets through,
	// newest first, each with its Status set, and the next cursor.
	ListKeys(ctx context.Context, ownerID uuid.UUID, f KeyFilter, page Page) ([]Key, string, error)
	// ListEvents returns a page of the owner's key events, newest first,
	// and the next cursor.
	ListEvents(ctx context.Context, ownerID uuid.UUID, f EventFilter, page Page) ([]Event, string, error)
	// UpdateKey changes what in says of a key (name, metadata,
	// allowed_cidrs) with an "updated" event listing the fields that
	// changed; a change to nothing writes nothing.
	UpdateKey(ctx context.Context, p *Principal, keyID uuid.UUID, in KeyUpdate, meta RequestMeta) (Key, error)
	// SetKeyDisabled disables (or enables) an active key, with its event;
	// the keys obtained through it follow. Asking for the state the key is
	// in changes nothing.
	SetKeyDisabled(ctx context.Context, p *Principal, keyID uuid.UUID, disabled bool, meta RequestMeta) (Key, error)
	// RecordConnectionClosed writes the connection_closed event of keyID:
	// p is about to close connectionID, which the key opened.
	RecordConnectionClosed(ctx context.Context, p *Principal, keyID, connectionID uuid.UUID, meta RequestMeta) error
}

// KeyChange tells observers that a key changed in a way that a cached
// verification of it must not outlive (revoked, replaced, re-dated,
// re-scoped).
type KeyChange struct {
	KeyID   uuid.UUID
	OwnerID uuid.UUID
	UserID  uuid.UUID
	KeyHash string // hex, as stored
	// Ended is true when the key stopped working at once.
	Ended bool
	// Disabled is true when the key, not ended, is refused because it or
	// a key it was obtained through is disabled; a later change with
	// Disabled false (an enable) restores it.
	Disabled bool
	// ExpiresAt is the key's expiry after the change (nil: never), so that
	// connections opened with it can end on time (a grace period's end).
	ExpiresAt *time.Time
	// AllowedNets are the key's allowed_cidrs after the change (empty: any
	// network), so that connections open from elsewhere close when the
	// owner narrows them.
	AllowedNets []netip.Prefix
	// Scopes are the key's scopes after the change, so that connections
	// admitted with a scope the owner took away close.
	Scopes Scopes
}

// WSLease is one admitted WebSocket connection as the cluster-wide count of
// connections knows it: the slot it takes (a key, or a user for a
// session), since when (the database's clock, so processes rank alike),
// that slot's cap as the connection's process knows it now, and the
// connection's public key for rotated secrets (nil: it takes none).
type WSLease struct {
	ID, SlotID, OwnerID uuid.UUID
	OpenedAt            time.Time
	Cap                 int
	HandoverKey         []byte
}

// PrincipalChange tells observers that what the principals of an owner (its
// tier) or of one user hold changed, or that the user or owner is gone.
type PrincipalChange struct {
	OwnerID uuid.UUID
	// UserID is set when one user changed; zero when the whole owner did.
	UserID uuid.UUID
}

// ChangeObserver hears about committed changes, from this process and from
// every other one (the change feed). Callbacks must be quick and
// idempotent: they run on the goroutine that delivers the change, and a
// change may be delivered twice (once by the writer, once by the feed).
type ChangeObserver interface {
	KeyChanged(KeyChange)
	PrincipalChanged(PrincipalChange)
	EventWritten(Event)
	// FeedDown says that changes may go unheard from now on (the feed's
	// connection is lost): cached state must be re-read once it is older
	// than the feed's stale bound.
	FeedDown()
	// FeedUp says that the feed listens again. Changes made while it was
	// down were never heard: drop everything derived from them.
	FeedUp()
}

// KeyUpdate is a validated PATCH of a key: nil fields stay as they are.
type KeyUpdate struct {
	Name         *string
	Metadata     json.RawMessage // nil: unchanged
	AllowedCIDRs *[]netip.Prefix
	Scopes       *Scopes // replaces the key's scopes; never empty
}
