package auth

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/metrics"
)

// KeyStore is the database side of key verification.
type KeyStore interface {
	KeyForAuth(ctx context.Context, keyHashHex string) (keyhub.AuthKey, error)
	KeyHashByID(ctx context.Context, keyID uuid.UUID) (string, error)
}

// KeyCacheConfig sizes the ApiKeyCache.
type KeyCacheConfig struct {
	TTL          time.Duration    // how long a verified key is trusted without the database
	Size         int              // verified keys kept
	NegativeTTL  time.Duration    // how long an unknown hash is answered without the database
	NegativeSize int              // unknown hashes kept
	Metrics      *metrics.Metrics // hits, misses and negative hits; may be nil
	// StaleBound is the oldest a cached verification may be while the
	// change feed is down (notices may be missed); 0 means the feed is
	// trusted without limit (no feed: a single process).
	StaleBound time.Duration
	// Now is the cache's clock, for expiries and the stale bound (nil:
	// time.Now). The LRUs' own TTLs keep the wall clock.
	Now func() time.Time
}

// ApiKeyCache verifies mk_ keys, keeping the principal of each verified key
// in memory so that a known key costs no database round trip. Unknown
// hashes are remembered briefly and in bounded number, so guessing keys can
// neither hammer the database nor grow memory. Both caches are LRUs with
// expiry (hashicorp/golang-lru), keyed by the raw SHA-256 of the key.
type ApiKeyCache struct {
	store   KeyStore
	known   *expirable.LRU[[32]byte, *cachedKey]
	unknown *expirable.LRU[[32]byte, struct{}]
	usage   *Toucher
	metrics *metrics.Metrics
	now     func() time.Time
	// generation counts invalidations. A lookup that started before an
	// invalidation must not keep what it read: it may be the state the
	// invalidation replaced (a revoked key cached as active).
	generation atomic.Uint64
	// staleBound and feedDown bound what is served while the change feed
	// cannot tell us about revocations.
	staleBound time.Duration
	feedIsDown atomic.Bool
	// beforeAdd runs between the database read and the insert (tests).
	beforeAdd func()
}

type cachedKey struct {
	principal keyhub.Principal
	revoked   bool
	// disabled: the key or a key it was obtained through is disabled. A
	// disable or enable of any of them invalidates the entry (the change
	// feed announces every key obtained through it).
	disabled bool
	// loadedAt is when the database said so (unix nanoseconds).
	loadedAt int64
	// lastMarked is the unix second the key's use was last handed to the
	// toucher; it keeps the toucher's lock off most requests.
	lastMarked atomic.Int64
}

// NewApiKeyCache returns a cache over store; usage receives the keys' uses
// (for last_used_at) and may be nil.
func NewApiKeyCache(store KeyStore, cfg KeyCacheConfig, usage *Toucher) *ApiKeyCache {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &ApiKeyCache{
		store:      store,
		known:      expirable.NewLRU[[32]byte, *cachedKey](cfg.Size, nil, cfg.TTL),
		unknown:    expirable.NewLRU[[32]byte, struct{}](cfg.NegativeSize, nil, cfg.NegativeTTL),
		usage:      usage,
		now:        cfg.Now,
		staleBound: cfg.StaleBound,
		metrics:    cfg.Metrics,
	}
}

// Verify returns the principal of a presented key, recording from as
// where the key was used (see admit). The returned principal is shared:
// callers must not modify it.
func (c *ApiKeyCache) Verify(ctx context.Context, key string, from keyhub.RequestMeta) (*keyhub.Principal, error) {
	// Every valid key has this length: anything else is refused before it
	// is hashed.
	if len(key) != apikey.Length {
		return nil, parseError(key)
	}
	// A hit needs no parsing: only keys that parsed and matched a stored
	// hash are ever cached, and a string with the same SHA-256 is the same
	// key. Parsing (base64 and checksum) was a sixth of a cached request.
	// A miss reuses the hash and goes on from the verified cache's miss.
	keyHash := apikey.Hash(key)
	now := c.now()
	if entry, ok := c.cached(keyHash, now); ok {
		c.metrics.KeyCacheHit()
		return c.admit(entry, now, from)
	}
	if err := parseError(key); err != nil {
		return nil, err
	}
	return c.miss(ctx, keyHash, now, from)
}

// parseError is why key is not a well-formed key, or nil.
func parseError(key string) error {
	switch apikey.Parse(key) {
	case nil:
		return nil
	case apikey.ErrChecksum:
		return errBadChecksum
	default:
		return errMalformedKey
	}
}

// VerifyID returns the principal of the key with this id (a WebSocket
// ticket names its key by id), through the same cache and rules as a
// presented key. It costs one indexed read to find the key's hash.
func (c *ApiKeyCache) VerifyID(ctx context.Context, keyID uuid.UUID, from keyhub.RequestMeta) (*keyhub.Principal, error) {
	keyHashHex, err := c.store.KeyHashByID(ctx, keyID)
	if keyhub.ErrorCode(err) == keyhub.CodeNotFound {
		return nil, keyhub.ErrUnknownKey
	}
	if err != nil {
		return nil, err
	}
	keyHash, err := apikey.HashFromHex(keyHashHex)
	if err != nil {
		return nil, keyhub.Internal(err)
	}
	return c.verifyHash(ctx, keyHash, from)
}

func (c *ApiKeyCache) verifyHash(ctx context.Context, keyHash [32]byte, from keyhub.RequestMeta) (*keyhub.Principal, error) {
	now := c.now()
	if entry, ok := c.cached(keyHash, now); ok {
		c.metrics.KeyCacheHit()
		return c.admit(entry, now, from)
	}
	return c.miss(ctx, keyHash, now, from)
}

// miss answers a hash the verified cache does not hold: from the
// negative cache, else from the database.
func (c *ApiKeyCache) miss(ctx context.Context, keyHash [32]byte, now time.Time, from keyhub.RequestMeta) (*keyhub.Principal, error) {
	if _, unknown := c.unknown.Get(keyHash); unknown {
		c.metrics.KeyCacheNegativeHit()
		return nil, keyhub.ErrUnknownKey
	}
	c.metrics.KeyCacheMiss()
	entry, err := c.load(ctx, keyHash, now)
	if err != nil {
		return nil, err
	}
	return c.admit(entry, now, from)
}

// cached returns the verified entry of keyHash, unless it is too old to
// trust while the change feed is down.
func (c *ApiKeyCache) cached(keyHash [32]byte, now time.Time) (*cachedKey, bool) {
	entry, ok := c.known.Get(keyHash)
	if ok && c.feedIsDown.Load() && now.UnixNano()-entry.loadedAt > int64(c.staleBound) {
		return nil, false // the feed may have missed its revocation: ask again
	}
	return entry, ok
}

// Errors are built once: the rejection path must stay cheap under a flood.
var (
	errMalformedKey = &keyhub.Error{Code: keyhub.CodeInvalidAPIKey, Reason: "malformed", Message: "API key is malformed: expected mk_ followed by 43 base64url characters"}
	errBadChecksum  = &keyhub.Error{Code: keyhub.CodeInvalidAPIKey, Reason: "bad_checksum", Message: "API key checksum does not match: the key was mistyped or truncated"}
)

func (c *ApiKeyCache) load(ctx context.Context, keyHash [32]byte, now time.Time) (*cachedKey, error) {
	gen := c.generation.Load()
	found, err := c.store.KeyForAuth(ctx, apikey.HexOfHash(keyHash))
	if keyhub.ErrorCode(err) == keyhub.CodeNotFound {
		c.keep(gen, func() { c.unknown.Add(keyHash, struct{}{}) }, func() { c.unknown.Remove(keyHash) })
		return nil, keyhub.ErrUnknownKey
	}
	if err != nil {
		return nil, err
	}
	entry := &cachedKey{principal: found.Principal, revoked: found.RevokedAt != nil, disabled: found.Disabled, loadedAt: now.UnixNano()}
	c.keep(gen, func() { c.known.Add(keyHash, entry) }, func() { c.known.Remove(keyHash) })
	return entry, nil
}

// keep stores what a lookup read unless an invalidation happened since the
// lookup began (generation gen). It adds first and checks after: checking
// first would leave a window in which an invalidation lands between the
// check and the add, and a revoked key would stay cached as active for the
// whole TTL. Removing after a late check may drop a newer entry too, which
// costs one database read, never a wrong answer.
func (c *ApiKeyCache) keep(gen uint64, add, remove func()) {
	if c.beforeAdd != nil {
		c.beforeAdd()
	}
	add()
	if c.generation.Load() != gen {
		remove()
	}
}

// admit checks a known key's state on every use, cached or not: expiry is
// a matter of the clock, not of the cache. The first use of each flush
// interval goes to the toucher, with where it came from: last_used_at and
// the address and agent beside it are that use's (a later use in the same
// interval is not seen, so that the others cost one atomic load).
func (c *ApiKeyCache) admit(entry *cachedKey, now time.Time, from keyhub.RequestMeta) (*keyhub.Principal, error) {
	if entry.revoked {
		return nil, keyhub.ErrKeyRevoked
	}
	if entry.principal.Expired(now) {
		return nil, keyhub.ErrKeyExpired
	}
	if entry.disabled {
		return nil, keyhub.ErrKeyDisabled
	}
	if c.usage != nil {
		sec := now.Unix()
		last := entry.lastMarked.Load()
		if sec-last >= int64(c.usage.Interval()/time.Second) && entry.lastMarked.CompareAndSwap(last, sec) {
			c.usage.MarkFrom(entry.principal.KeyID, now, from)
		}
	}
	return &entry.principal, nil
}

// Invalidate forgets what the cache knows of a key, so its next use reads
// the database. Called after a revoke or refresh commits.
func (c *ApiKeyCache) Invalidate(keyHashHex string) {
	c.generation.Add(1)
	keyHash, err := apikey.HashFromHex(keyHashHex)
	if err != nil {
		return
	}
	c.known.Remove(keyHash)
	c.unknown.Remove(keyHash)
}

// forgetPrincipal drops the keys of a changed owner (tier) or user: they
// carry a stale principal.
func (c *ApiKeyCache) forgetPrincipal(change keyhub.PrincipalChange) {
	c.generation.Add(1)
	// A full scan, but tier changes are rare and the cache is bounded.
	for _, keyHash := range c.known.Keys() {
		entry, ok := c.known.Peek(keyHash)
		if !ok || entry.principal.OwnerID != change.OwnerID {
			continue
		}
		if change.UserID == uuid.Nil || entry.principal.UserID == change.UserID {
			c.known.Remove(keyHash)
		}
	}
}

// feedDown makes a cached key re-read once it is older than the stale
// bound, until feedUp.
func (c *ApiKeyCache) feedDown() { c.feedIsDown.Store(true) }

// feedUp drops everything cached: what changed while the feed was down
// went unheard.
func (c *ApiKeyCache) feedUp() {
	c.generation.Add(1)
	c.known.Purge()
	c.unknown.Purge()
	c.feedIsDown.Store(false)
}

// Len reports how many verified and unknown keys the cache holds.
func (c *ApiKeyCache) Len() (known, unknown int) { return c.known.Len(), c.unknown.Len() }
