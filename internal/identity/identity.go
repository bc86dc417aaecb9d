// Package identity signs what keyhub tells the services behind it about a
// caller: the Keyhub-Identity JWT (ES256, keyhub's own gateway key, kid
// set) and the plain convenience headers beside it. The gateway (proxy
// and forward auth) calls Headers after admitting a request and sets
// them; upstreams verify the token with api/identity against the JWKS
// this package serves at /.well-known/jwks.json.
//
// Signing costs ≈30 µs of CPU, more than the rest of a proxied request,
// so a signed token is reused for the first half of its life for the same
// principal and audience: an upstream always receives a token with at
// least half its lifetime left, and keyhub signs at most once per
// principal, audience and half-lifetime.
package identity

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	wire "github.com/keyhub/keyhub/api/identity"
	"github.com/keyhub/keyhub/internal/eckey"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// MaxTTL is the longest an identity token lives.
const MaxTTL = 60 * time.Second

// DefaultCacheSize is how many signed tokens a Signer keeps by default.
const DefaultCacheSize = 10_000

// Config is what a Signer needs.
type Config struct {
	// Key signs every token (GATEWAY_SIGNING_KEY): an EC P-256 key.
	Key *ecdsa.PrivateKey
	// Issuer is the iss of every token: keyhub's public URL (PUBLIC_URL).
	Issuer string
	// Scopes names the principal's scope bits in the scopes claim.
	Scopes *keyhub.ScopeCatalog
	// TTL is a token's lifetime, at most MaxTTL (the default).
	TTL time.Duration
	// CacheSize bounds the signed tokens kept for reuse (default
	// DefaultCacheSize).
	CacheSize int
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
}

// Signer signs identities with one key and keeps them for reuse. It is
// safe for concurrent use.
type Signer struct {
	key    *ecdsa.PrivateKey
	public eckey.Public
	issuer string
	scopes *keyhub.ScopeCatalog
	ttl    time.Duration
	now    func() time.Time

	shardCap int
	shards   [cacheShards]shard
}

// cacheShards spreads the cache's lock over this many maps.
const cacheShards = 16

type shard struct {
	mu sync.RWMutex
	m  map[cacheKey]cached
}

// cacheKey is everything a token says about its subject, so a token is
// reused only for exactly the same claims: a tier change, a re-scoped
// key or a grace period's new expiry each get a token of their own.
type cacheKey struct {
	user, owner, key uuid.UUID
	scopes           keyhub.Scopes
	expires          int64 // the credential's expiry (UnixNano), 0 for none
	tier             keyhub.Tier
	method           keyhub.AuthMethod
	audience         string
}

type cached struct {
	// headers holds the token and the convenience headers of its
	// principal, built once when it is signed.
	headers *Headers
	renewAt int64 // UnixNano: hand it out until then (half its life)
}

// Headers are the identity headers of one principal and audience, built
// once per signed token: Set assigns them to a request or an answer
// without formatting or canonicalising anything, so a cached identity
// costs no allocation per request. The value slices are shared by every
// request the token is reused for: never modify them (net/http only reads
// a header's values; an append to a full slice copies it).
type Headers struct {
	identity, userID, ownerID, keyID, scopes, tier []string
}

// Token is the signed Keyhub-Identity.
func (v *Headers) Token() string { return v.identity[0] }

// Set sets Keyhub-Identity and the convenience headers (Keyhub-User-Id,
// Keyhub-Owner-Id, Keyhub-Key-Id, Keyhub-Scopes, Keyhub-Tier) on h,
// replacing any value h held; Keyhub-Key-Id is removed for a user
// session. Callers strip every client-sent Keyhub-* header before (the
// proxy) or answer only with these (forward auth). The names are the
// canonical forms net/http uses, so they are assigned directly.
func (v *Headers) Set(h http.Header) {
	h[wire.Header] = v.identity
	h[wire.HeaderUserID] = v.userID
	h[wire.HeaderOwnerID] = v.ownerID
	if v.keyID != nil {
		h[wire.HeaderKeyID] = v.keyID
	} else {
		delete(h, wire.HeaderKeyID)
	}
	h[wire.HeaderScopes] = v.scopes
	h[wire.HeaderTier] = v.tier
}

// New returns a Signer for cfg.
func New(cfg Config) (*Signer, error) {
	switch {
	case cfg.Key == nil:
		return nil, errors.New("identity: no signing key")
	case cfg.Issuer == "":
		return nil, errors.New("identity: no issuer (PUBLIC_URL)")
	case cfg.TTL < 0 || cfg.TTL > MaxTTL:
		return nil, fmt.Errorf("identity: TTL %s is not within (0, %s]", cfg.TTL, MaxTTL)
	}
	public, err := eckey.PublicOf(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if cfg.TTL == 0 {
		cfg.TTL = MaxTTL
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Signer{
		key:      cfg.Key,
		public:   public,
		issuer:   cfg.Issuer,
		scopes:   cfg.Scopes,
		ttl:      cfg.TTL,
		now:      cfg.Now,
		shardCap: (cfg.CacheSize + cacheShards - 1) / cacheShards,
	}
	for i := range s.shards {
		s.shards[i].m = make(map[cacheKey]cached)
	}
	return s, nil
}

// KeyID is the kid of every token: the RFC 7638 thumbprint of the public
// key, the same on every process holding the same key.
func (s *Signer) KeyID() string { return s.public.KeyID }

// JWKS is the public key set that verifies the tokens, as served.
func (s *Signer) JWKS() []byte { return append([]byte(nil), s.public.JWKS...) }

// JWKSHandler serves the JWKS (GET /.well-known/jwks.json).
func (s *Signer) JWKSHandler() http.Handler { return s.public.Handler() }

// Identity returns a Keyhub-Identity token for p, addressed to audience
// (api/identity.DefaultAudience when empty). A token signed earlier for the
// same principal and audience is returned while it has at least half its
// life left; a cache hit neither signs nor allocates. The token never
// outlives p's credential.
func (s *Signer) Identity(p *keyhub.Principal, audience string) (string, error) {
	v, err := s.Headers(p, audience)
	if err != nil {
		return "", err
	}
	return v.Token(), nil
}

// Headers returns the identity headers of p for audience: the token as
// Identity returns it (a cache hit neither signs nor allocates) and the
// convenience headers built with it.
func (s *Signer) Headers(p *keyhub.Principal, audience string) (*Headers, error) {
	if audience == "" {
		audience = wire.DefaultAudience
	}
	k := cacheKey{
		user: p.UserID, owner: p.OwnerID, key: p.KeyID,
		scopes: p.Scopes, tier: p.Tier, method: p.Method, audience: audience,
	}
	if !p.ExpiresAt.IsZero() {
		k.expires = p.ExpiresAt.UnixNano()
	}
	now := s.now()
	sh := &s.shards[shardOf(&k)]
	sh.mu.RLock()
	c, ok := sh.m[k]
	sh.mu.RUnlock()
	if ok && now.UnixNano() < c.renewAt {
		return c.headers, nil
	}
	token, renewAt, err := s.sign(p, audience, now)
	if err != nil {
		return nil, err
	}
	v := s.headersOf(p, token)
	sh.put(k, cached{headers: v, renewAt: renewAt}, now.UnixNano(), s.shardCap)
	return v, nil
}

// headersOf builds the identity headers of p carrying token.
func (s *Signer) headersOf(p *keyhub.Principal, token string) *Headers {
	v := &Headers{
		identity: []string{token},
		userID:   []string{p.UserID.String()},
		ownerID:  []string{p.OwnerID.String()},
		scopes:   []string{strings.Join(s.scopes.Names(p.Scopes), ",")},
		tier:     []string{string(p.Tier)},
	}
	if p.IsKey() {
		v.keyID = []string{p.KeyID.String()}
	}
	return v
}

// shardOf picks a shard from the random bits of the ids (UUID v4 and v5
// bytes 0 and 15 are hash or random output).
func shardOf(k *cacheKey) int {
	return int(k.user[0]^k.user[15]^k.key[15]^byte(len(k.audience))) % cacheShards
}

// put stores c under k, making room in a full shard: first by dropping
// tokens no longer handed out, then, if all are fresh (more principals
// than the cache holds), one arbitrary entry.
func (sh *shard) put(k cacheKey, c cached, now int64, capacity int) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, replacing := sh.m[k]; !replacing && len(sh.m) >= capacity {
		for old, e := range sh.m {
			if e.renewAt <= now {
				delete(sh.m, old)
			}
		}
		if len(sh.m) >= capacity {
			for old := range sh.m {
				delete(sh.m, old)
				break
			}
		}
	}
	sh.m[k] = c
}

// sign mints a token for p valid from now, and says until when it may be
// reused.
func (s *Signer) sign(p *keyhub.Principal, audience string, now time.Time) (string, int64, error) {
	iat := now.Truncate(time.Second)
	exp := iat.Add(s.ttl)
	if !p.ExpiresAt.IsZero() && p.ExpiresAt.Before(exp) {
		exp = p.ExpiresAt.Truncate(time.Second)
	}
	if !exp.After(now) {
		return "", 0, keyhub.ErrKeyExpired
	}
	claims := wire.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   p.UserID.String(),
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(iat),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        uuid.NewString(),
		},
		OwnerID:    p.OwnerID.String(),
		Scopes:     s.scopes.Names(p.Scopes),
		Tier:       string(p.Tier),
		AuthMethod: string(p.Method),
	}
	if p.IsKey() {
		claims.KeyID = p.KeyID.String()
	}
	token := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	token.Header["kid"] = s.public.KeyID
	token.Header["typ"] = wire.TokenType
	signed, err := token.SignedString(s.key)
	if err != nil {
		return "", 0, keyhub.Internal(fmt.Errorf("sign identity: %w", err))
	}
	// Reused for the first half of its life: an upstream always gets at
	// least half of it, which covers its clock skew and queueing.
	renewAt := now.Add(exp.Sub(now) / 2)
	return signed, renewAt.UnixNano(), nil
}

// CachedTokens counts the signed tokens kept for reuse.
func (s *Signer) CachedTokens() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}
