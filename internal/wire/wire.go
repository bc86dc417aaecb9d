// Package wire turns the domain's values into the api package's wire
// shapes. Both front ends (REST in httpapi, the socket in ws) answer with
// it, so a key or an event looks the same on every path; it lives apart
// from api because api is the public contract the client compiles, and
// must not carry the server's tier table or domain types with it.
package wire

import (
	"encoding/json"
	"net/netip"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// MeFrom describes a principal, with its tier's limits as the tier table
// states them except the request rate: requestsPerMinute is the one this
// server enforces (configuration may override the table's); scopes names
// its scope bits.
func MeFrom(p *keyhub.Principal, scopes *keyhub.ScopeCatalog, requestsPerMinute int) api.Me {
	me := api.Me{
		UserID:     p.UserID,
		Email:      p.Email,
		OwnerID:    p.OwnerID,
		Tier:       string(p.Tier),
		AuthMethod: string(p.Method),
		Scopes:     scopes.Names(p.Scopes),
	}
	l := p.Tier.Limits()
	me.Limits = api.TierLimits{
		MaxActiveKeys:     l.ActiveKeysPerUser,
		MaxConnections:    l.WSConnections,
		MessagesPerMinute: l.WSMessagesPerMinute,
		MaxMessageBytes:   l.WSMaxMessageBytes,
		SessionSeconds:    int64(l.WSSession / time.Second),
		RequestsPerMinute: requestsPerMinute,
	}
	if p.IsKey() {
		id := p.KeyID
		me.KeyID = &id
		me.KeyPrefix = p.KeyPrefix
	}
	if !p.ExpiresAt.IsZero() {
		t := api.Timestamp(p.ExpiresAt)
		me.ExpiresAt = &t
	}
	return me
}

// WSLimitsFrom is the part of a tier's limits a WebSocket welcome announces.
func WSLimitsFrom(l keyhub.TierLimits) api.WSLimits {
	return api.WSLimits{
		MaxConnections:    l.WSConnections,
		MessagesPerMinute: l.WSMessagesPerMinute,
		MaxMessageBytes:   l.WSMaxMessageBytes,
		SessionSeconds:    int64(l.WSSession / time.Second),
	}
}

// KeyFrom describes a key; scopes names its scope bits. Its status is the
// one the database read it with (a listing: the status its filter used);
// a key a write returned, which has none, is judged as of now.
func KeyFrom(k keyhub.Key, now time.Time, scopes *keyhub.ScopeCatalog) api.Key {
	status := k.Status
	if status == "" {
		status = k.StatusAt(now)
	}
	out := api.Key{
		ID:         k.ID,
		UserID:     k.UserID,
		Name:       k.Name,
		Prefix:     k.Prefix,
		Scopes:     scopes.Names(k.Scopes),
		Status:     string(status),
		CreatedAt:  api.Timestamp(k.CreatedAt),
		ExpiresAt:  timestampOrNil(k.ExpiresAt),
		LastUsedAt: timestampOrNil(k.LastUsedAt),
		RevokedAt:  timestampOrNil(k.RevokedAt),
		ReplacedBy: k.ReplacedBy,

		AutoRotateBefore: secondsOrNil(k.AutoRotateBefore),
		Metadata:         k.Metadata,
		DisabledAt:       timestampOrNil(k.DisabledAt),
	}
	if len(out.Metadata) == 0 {
		out.Metadata = json.RawMessage("{}")
	}
	out.LastUsedIP = addrOrNil(k.LastUsedFrom.IP)
	out.LastUsedUserAgent = stringOrNil(k.LastUsedFrom.UserAgent)
	if c := k.CreatedBy; c != nil {
		out.CreatedBy = &api.KeyCreator{UserID: c.UserID, Email: stringOrNil(c.Email), KeyID: c.KeyID, KeyPrefix: stringOrNil(c.KeyPrefix)}
	}
	out.AllowedCIDRs = make([]string, 0, len(k.AllowedCIDRs))
	for _, n := range k.AllowedCIDRs {
		out.AllowedCIDRs = append(out.AllowedCIDRs, n.String())
	}
	return out
}

// secondsOrNil is a duration in whole seconds, nil for zero (not set).
func secondsOrNil(d time.Duration) *int64 {
	if d <= 0 {
		return nil
	}
	secs := int64(d / time.Second)
	return &secs
}

// EventFrom describes an audit event.
func EventFrom(e keyhub.Event) api.Event {
	out := api.Event{
		ID:          e.ID,
		KeyID:       e.KeyID,
		ActorUserID: e.ActorUserID,
		ActorKeyID:  e.ActorKeyID,
		ActorEmail:  stringOrNil(e.ActorEmail),
		Type:        string(e.Type),
		Details:     e.Details,
		CreatedAt:   api.Timestamp(e.CreatedAt),
	}
	if out.Details == nil {
		out.Details = json.RawMessage("{}")
	}
	out.IPAddress = addrOrNil(e.IP)
	out.UserAgent = stringOrNil(e.UserAgent)
	return out
}

// addrOrNil is an address as text, nil for the zero Addr (unknown).
func addrOrNil(ip netip.Addr) *string {
	if !ip.IsValid() {
		return nil
	}
	text := ip.String()
	return &text
}

// SeedKeyInfoFrom describes a key the seed service's way.
func SeedKeyInfoFrom(k keyhub.Key) api.SeedKeyInfo {
	return api.SeedKeyInfo{ID: k.ID, Prefix: k.Prefix, Name: k.Name, LastUsedAt: timestampOrNil(k.LastUsedAt), CreatedAt: api.Timestamp(k.CreatedAt)}
}

// SeedCreatedKeyFrom describes a new key with its secret, the seed
// service's way.
func SeedCreatedKeyFrom(k keyhub.Key, secret string) api.SeedCreatedKey {
	return api.SeedCreatedKey{ID: k.ID, Key: secret, Prefix: k.Prefix, Name: k.Name, CreatedAt: api.Timestamp(k.CreatedAt)}
}

// timestampOrNil is api.Timestamp of an optional time.
func timestampOrNil(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := api.Timestamp(*t)
	return &u
}

// stringOrNil is s, or nil when it is empty (unknown).
func stringOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
