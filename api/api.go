// Package api holds the JSON shapes of keyhub's HTTP API as openapi.yaml
// documents them: the /v1 API in snake_case, and the seed service's
// single-key API (/api/v1/auth/api-keys) in the camelCase its clients
// already speak. Tests validate real responses against openapi.yaml, so
// these types and the spec cannot drift apart unnoticed.
//
// The package is the contract and nothing else: it imports only the
// standard library and uuid, so the public client compiles none of the
// server. The server builds these shapes from its domain in internal/wire.
package api

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Me is the authenticated principal, as GET /v1/me and the WebSocket
// "whoami" answer it.
type Me struct {
	UserID     uuid.UUID  `json:"user_id"`
	Email      string     `json:"email"`
	OwnerID    uuid.UUID  `json:"owner_id"`
	Tier       string     `json:"tier"`
	AuthMethod string     `json:"auth_method"`
	KeyID      *uuid.UUID `json:"key_id,omitempty"`
	KeyPrefix  string     `json:"key_prefix,omitempty"`
	Scopes     []string   `json:"scopes"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	Limits     TierLimits `json:"limits"`
}

// TierLimits are the quotas of the principal's tier.
type TierLimits struct {
	MaxActiveKeys     int   `json:"max_active_keys"`
	MaxConnections    int   `json:"max_connections"`
	MessagesPerMinute int   `json:"messages_per_minute"`
	MaxMessageBytes   int64 `json:"max_message_bytes"`
	SessionSeconds    int64 `json:"session_seconds"`
	// RequestsPerMinute is the REST request limit per key or user session
	// (the server's RATE_LIMIT_TIER_RPM may override the tier table's).
	RequestsPerMinute int `json:"requests_per_minute"`
}

// Key is an API key without its secret.
type Key struct {
	ID         uuid.UUID  `json:"id"`
	UserID     uuid.UUID  `json:"user_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	Status     string     `json:"status"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	// LastUsedIP and LastUsedUserAgent are where the use last_used_at
	// records came from (the client address as the server's trusted
	// proxies tell it, the User-Agent); null when unknown.
	LastUsedIP        *string    `json:"last_used_ip"`
	LastUsedUserAgent *string    `json:"last_used_user_agent"`
	RevokedAt         *time.Time `json:"revoked_at"`
	ReplacedBy        *uuid.UUID `json:"replaced_by"`
	// AutoRotateBefore (seconds): the key is refreshed this long before it
	// expires, its secret delivered to its open connections; null: never.
	AutoRotateBefore *int64 `json:"auto_rotate_before"`
	// Metadata is the owner's JSON object ({} when none), never interpreted.
	Metadata json.RawMessage `json:"metadata"`
	// AllowedCIDRs are the networks the key may be used from; empty: any.
	AllowedCIDRs []string `json:"allowed_cidrs"`
	// DisabledAt is when the key was disabled; null while it is not.
	DisabledAt *time.Time `json:"disabled_at"`
	// CreatedBy is who created the key; null when keyhub made it itself
	// (an auto-rotation).
	CreatedBy *KeyCreator `json:"created_by"`
}

// KeyCreator is who created a key: a user with a session (key_id null),
// or with one of its keys (key_id and key_prefix name it). email is null
// when the user has none, or no longer belongs to this account.
type KeyCreator struct {
	UserID    uuid.UUID  `json:"user_id"`
	Email     *string    `json:"email"`
	KeyID     *uuid.UUID `json:"key_id"`
	KeyPrefix *string    `json:"key_prefix"`
}

// CreatedKey is a new key with its secret, shown this once. A refresh
// that delivered the secret to the key's connections leaves it out.
type CreatedKey struct {
	Key
	Secret string `json:"key,omitempty"`
}

// RevokedKey answers a revoke; AlreadyRevoked tells a repeated revoke
// apart from the first.
type RevokedKey struct {
	Key
	AlreadyRevoked bool `json:"already_revoked"`
}

// Refreshed answers a refresh: the replacement (with its secret) and the
// old key as it is now (revoked, or expiring at the end of the grace).
type Refreshed struct {
	NewKey CreatedKey `json:"new_key"`
	OldKey Key        `json:"old_key"`
	// DeliveredTo is, for "deliver": "connections", how many open
	// connections the new secret was sent to (then NewKey has no secret).
	DeliveredTo *int `json:"delivered_to,omitempty"`
}

// KeyList is a page of keys.
type KeyList struct {
	Data       []Key   `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// CreateKeyRequest is the body of POST /v1/keys.
type CreateKeyRequest struct {
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	ExpiresAt *time.Time `json:"expires_at"`
	// ExpiresIn is a lifetime in seconds, an alternative to ExpiresAt.
	ExpiresIn *int64 `json:"expires_in"`
	// AutoRotateBefore (seconds, shorter than the lifetime) marks the key
	// for zero-touch rotation.
	AutoRotateBefore *int64 `json:"auto_rotate_before,omitempty"`
	// Metadata is a JSON object of at most 4 KiB; AllowedCIDRs at most 32
	// IPv4 or IPv6 networks the key may be used from (none: any).
	Metadata     json.RawMessage `json:"metadata,omitempty"`
	AllowedCIDRs []string        `json:"allowed_cidrs,omitempty"`
}

// UpdateKeyRequest is the body of PATCH /v1/keys/{id}: fields left out
// stay as they are; none may be null.
type UpdateKeyRequest struct {
	Name         Optional[string]   `json:"name,omitzero"`
	Metadata     json.RawMessage    `json:"metadata,omitempty"`
	AllowedCIDRs Optional[[]string] `json:"allowed_cidrs,omitzero"`
	// Scopes replace the key's scopes: a non-empty list the caller holds.
	Scopes Optional[[]string] `json:"scopes,omitzero"`
}

// RefreshKeyRequest is the body of POST /v1/keys/{id}/refresh.
type RefreshKeyRequest struct {
	Name *string `json:"name"`
	// GracePeriod keeps the old key working this many seconds (max 86400).
	GracePeriod *int64 `json:"grace_period"`
	// Deliver "connections" sends the new secret only to the open
	// WebSocket connections of the key being replaced (key_rotated), not
	// in the answer; "" or "response": in the answer.
	Deliver string `json:"deliver,omitempty"`
	// AutoRotateBefore sets the replacement's (seconds; 0 removes it;
	// omitted: the old key's). Null is refused: it could mean either.
	AutoRotateBefore Optional[int64] `json:"auto_rotate_before,omitzero"`
}

// Event is one entry of the audit trail.
type Event struct {
	ID          int64      `json:"id"`
	KeyID       uuid.UUID  `json:"key_id"`
	ActorUserID *uuid.UUID `json:"actor_user_id"`
	ActorKeyID  *uuid.UUID `json:"actor_key_id"`
	// ActorEmail is the acting user's email; null for keyhub itself, a
	// user without one, or one who no longer belongs to this account.
	ActorEmail *string         `json:"actor_email"`
	Type       string          `json:"type"`
	IPAddress  *string         `json:"ip_address"`
	UserAgent  *string         `json:"user_agent"`
	Details    json.RawMessage `json:"details"`
	CreatedAt  time.Time       `json:"created_at"`
}

// EventList is a page of events.
type EventList struct {
	Data       []Event `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// Health answers /healthz and /readyz.
type Health struct {
	Status string `json:"status"`
}

// Timestamp is how every time leaves keyhub, over REST and WebSocket
// alike: RFC 3339 in UTC with at most microsecond precision (PostgreSQL's),
// trailing zeros omitted as RFC 3339 allows; 2026-12-02T14:03:03.997123Z.
func Timestamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// DevTokenRequest is POST /dev/token's body (dev mode only).
type DevTokenRequest struct {
	Email string `json:"email"`
}

// DevToken is a dev-mode access token, shaped like the part of Supabase
// Auth's token answer a dashboard uses.
type DevToken struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// VerifyKeyRequest is the body of POST /v1/keys/verify: the key a
// customer presented to the product, the scope the call needs, and the
// address the customer's request came from (needed for a key restricted to
// networks: without it such a key is refused IP_NOT_ALLOWED).
type VerifyKeyRequest struct {
	Key      string  `json:"key"`
	Scope    *string `json:"scope,omitempty"`
	ClientIP *string `json:"client_ip,omitempty"`
}

// KeyVerification answers POST /v1/keys/verify. An invalid key is only
// {"valid":false,"code":...}: nothing else about it is told; the other
// fields are then zero.
type KeyVerification struct {
	Valid bool `json:"valid"`
	// Code is VALID, or why not: INVALID_API_KEY, KEY_REVOKED,
	// KEY_EXPIRED, KEY_DISABLED, INSUFFICIENT_SCOPE, IP_NOT_ALLOWED,
	// RATE_LIMITED.
	Code      string     `json:"code"`
	KeyID     uuid.UUID  `json:"key_id"`
	OwnerID   uuid.UUID  `json:"owner_id"`
	UserID    uuid.UUID  `json:"user_id"`
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	Tier      string     `json:"tier"`
	ExpiresAt *time.Time `json:"expires_at"`
	// RateLimit is the key's bucket after this verification; null when
	// the server has no rate limits or could not read them (Redis down).
	RateLimit *VerifyRateLimit `json:"ratelimit"`
}

// VerifyRateLimit is a key's request bucket.
type VerifyRateLimit struct {
	Limit        int   `json:"limit"`
	Remaining    int   `json:"remaining"`
	ResetSeconds int64 `json:"reset_seconds"`
}

// KeyRefused is what POST /v1/keys/verify tells about a key that may not
// be used: only why.
type KeyRefused struct {
	Valid bool   `json:"valid"`
	Code  string `json:"code"`
}

// OwnerPolicy is an owner's rules for its keys (GET and PATCH
// /v1/owner/policy).
type OwnerPolicy struct {
	// MaxKeyLifetime is the longest, in seconds, a key created or
	// refreshed from now on may live; null when there is no bound.
	MaxKeyLifetime *int64 `json:"max_key_lifetime"`
	// LeakPolicy is what a report that a key leaked does: "revoke" or "notify".
	LeakPolicy string `json:"leak_policy"`
}

// OwnerPolicyUpdate is the body of PATCH /v1/owner/policy: fields left out
// stay as they are; max_key_lifetime null removes the bound.
type OwnerPolicyUpdate struct {
	MaxKeyLifetime Optional[int64]  `json:"max_key_lifetime,omitzero"`
	LeakPolicy     Optional[string] `json:"leak_policy,omitzero"`
}

// Optional is a field of a PATCH body that may be left out (unchanged),
// null, or a value: a pointer cannot tell the first two apart.
type Optional[T any] struct {
	Set   bool // present in the body, null or not
	Null  bool
	Value T
}

// Some is an Optional holding v.
func Some[T any](v T) Optional[T] { return Optional[T]{Set: true, Value: v} }

// Null is an Optional holding null.
func Null[T any]() Optional[T] { return Optional[T]{Set: true, Null: true} }

// IsZero reports a field left out (omitzero leaves it out of the JSON).
func (o Optional[T]) IsZero() bool { return !o.Set }

// MarshalJSON writes the value, or null.
func (o Optional[T]) MarshalJSON() ([]byte, error) {
	if !o.Set || o.Null {
		return []byte("null"), nil
	}
	return json.Marshal(o.Value)
}

// UnmarshalJSON reads a value or null; encoding/json calls it only for a
// field that is present.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	*o = Optional[T]{Set: true}
	if string(b) == "null" {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.Value)
}
