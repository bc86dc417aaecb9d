// Package keyhub holds the domain of the service: tenants and their tiers,
// the authenticated principal, scopes, and the error codes every layer
// speaks. It imports nothing of the project, so every other package can
// depend on it.
package keyhub

import (
	"net/netip"
	"time"

	"github.com/google/uuid"
)

// Tier is an owner's plan; it decides how many keys and connections it gets.
type Tier string

// The tiers, as stored in owners.tier.
const (
	TierFree       Tier = "free"
	TierPro        Tier = "pro"
	TierTeam       Tier = "team"
	TierEnterprise Tier = "enterprise"
)

// TierLimits are the quotas of one tier.
type TierLimits struct {
	ActiveKeysPerUser   int
	WSConnections       int
	WSMessagesPerMinute int
	WSMaxMessageBytes   int64
	WSSession           time.Duration
	// RequestsPerMinute limits REST requests per API key or user session
	// (RATE_LIMIT_TIER_RPM overrides it).
	RequestsPerMinute int
}

var tierLimits = map[Tier]TierLimits{
	TierFree:       {ActiveKeysPerUser: 1, WSConnections: 1, WSMessagesPerMinute: 60, WSMaxMessageBytes: 64 << 10, WSSession: 30 * time.Minute, RequestsPerMinute: 60},
	TierPro:        {ActiveKeysPerUser: 5, WSConnections: 5, WSMessagesPerMinute: 300, WSMaxMessageBytes: 1 << 20, WSSession: 2 * time.Hour, RequestsPerMinute: 600},
	TierTeam:       {ActiveKeysPerUser: 25, WSConnections: 25, WSMessagesPerMinute: 1000, WSMaxMessageBytes: 10 << 20, WSSession: 8 * time.Hour, RequestsPerMinute: 3000},
	TierEnterprise: {ActiveKeysPerUser: 100, WSConnections: 100, WSMessagesPerMinute: 10000, WSMaxMessageBytes: 16 << 20, WSSession: 24 * time.Hour, RequestsPerMinute: 20000},
}

// Limits returns the quotas of t; an unknown tier gets the free tier's, so a
// bad row can never grant more than the smallest plan.
func (t Tier) Limits() TierLimits {
	if l, ok := tierLimits[t]; ok {
		return l
	}
	return tierLimits[TierFree]
}

// Valid reports whether t is one of the known tiers.
func (t Tier) Valid() bool {
	_, ok := tierLimits[t]
	return ok
}

// AuthMethod says how a principal proved who it is.
type AuthMethod string

// The ways in.
const (
	AuthJWT    AuthMethod = "jwt"
	AuthAPIKey AuthMethod = "api_key"
)

// Principal is the authenticated caller of a request or connection.
type Principal struct {
	UserID  uuid.UUID
	OwnerID uuid.UUID
	Tier    Tier
	Email   string
	Method  AuthMethod
	// KeyID, LineageID, KeyPrefix and KeyName are set when Method is AuthAPIKey.
	KeyID uuid.UUID
	// LineageID is the key's lineage (Key.LineageID): what the key may
	// spend belongs to it, so that a refresh does not start afresh.
	LineageID uuid.UUID
	KeyPrefix string
	KeyName   string
	// AllowedNets are the key's allowed_cidrs: the networks it may be used
	// from (empty: any).
	AllowedNets []netip.Prefix
	Scopes      Scopes
	// ExpiresAt is when the credential stops being valid: the key's
	// expires_at or the token's exp. Zero means never.
	ExpiresAt time.Time
	// Anonymous is set for a session of an anonymous sign-in (the token's
	// is_anonymous): a visitor who has not linked an identity yet. It comes
	// from each token, never from a cache, so the first token after the
	// user links an identity clears it.
	Anonymous bool
}

// AnonymousPolicy is what anonymous sign-ins may do (ANONYMOUS_USERS).
type AnonymousPolicy string

// The policies.
const (
	// AnonymousRefuse refuses every request of an anonymous session, before
	// any user or tenant is created for it.
	AnonymousRefuse AnonymousPolicy = "refuse"
	// AnonymousReadOnly lets an anonymous session read (GET /v1/me, its
	// keys and events) but not create or refresh keys, issue tickets or
	// open sockets. The default.
	AnonymousReadOnly AnonymousPolicy = "read-only"
	// AnonymousAllow treats an anonymous session like any other.
	AnonymousAllow AnonymousPolicy = "allow"
)

// IsKey reports whether the principal authenticated with an API key.
func (p *Principal) IsKey() bool { return p.Method == AuthAPIKey }

// Expired reports whether the credential behind p has expired at now.
func (p *Principal) Expired(now time.Time) bool {
	return !p.ExpiresAt.IsZero() && !now.Before(p.ExpiresAt)
}
