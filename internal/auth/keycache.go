package auth

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/metrics"
)

// KeyStore is the database side of key verification.
type KeyStore interface {
	KeyForAuth(ctx context.Context, keyHashHex string) (keyhub.AuthKey, error)
}

// KeyCacheConfig sizes the ApiKeyCache.
type KeyCacheConfig struct {
	TTL          time.Duration    // how long a verified key is trusted without the database
	Size         int              // verified keys kept
	NegativeTTL  time.Duration    // how long an unknown hash is answered without the database
	NegativeSize int              // unknown hashes kept
	Metrics      *metrics.Metrics // hits, misses and negative hits; may be nil
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
	// invalidation must not store what it read: it may be the state the
	// invalidation replaced (a revoked key cached as active).
	generation atomic.Uint64
}

type cachedKey struct {
	principal keyhub.Principal
	revoked   bool
	// lastMarked is the unix second the key's use was last handed to the
	// toucher; it keeps the toucher's lock off most requests.
	lastMarked atomic.Int64
}

// NewApiKeyCache returns a cache over store; usage receives the keys' uses
// (for last_used_at) and may be nil.
func NewApiKeyCache(store KeyStore, cfg KeyCacheConfig, usage *Toucher) *ApiKeyCache {
	return &ApiKeyCache{
		store:   store,
		known:   expirable.NewLRU[[32]byte, *cachedKey](cfg.Size, nil, cfg.TTL),
		unknown: expirable.NewLRU[[32]byte, struct{}](cfg.NegativeSize, nil, cfg.NegativeTTL),
		usage:   usage,
		metrics: cfg.Metrics,
		now:     time.Now,
	}
}

// Verify returns the principal of a presented key. The returned principal
// is shared: callers must not modify it.
func (c *ApiKeyCache) Verify(ctx context.Context, key string) (*keyhub.Principal, error) {
	switch apikey.Parse(key) {
	case nil:
	case apikey.ErrChecksum:
		return nil, errBadChecksum
	default:
		return nil, errMalformedKey
	}
	keyHash := apikey.Hash(key)
	entry, ok := c.known.Get(keyHash)
	if ok {
		c.metrics.KeyCacheHit()
	} else {
		if _, unknown := c.unknown.Get(keyHash); unknown {
			c.metrics.KeyCacheNegativeHit()
			return nil, errUnknownKey
		}
		c.metrics.KeyCacheMiss()
		var err error
		if entry, err = c.load(ctx, keyHash); err != nil {
			return nil, err
		}
	}
	return c.admit(entry)
}

// Errors are built once: the rejection path must stay cheap under a flood.
var (
	errMalformedKey = keyhub.Errorf(keyhub.CodeInvalidAPIKey, "API key is malformed: expected mk_ followed by 43 base64url characters")
	errBadChecksum  = keyhub.Errorf(keyhub.CodeInvalidAPIKey, "API key checksum does not match: the key was mistyped or truncated")
	errUnknownKey   = keyhub.Errorf(keyhub.CodeUnknownAPIKey, "API key is not known")
	errKeyRevoked   = keyhub.Errorf(keyhub.CodeKeyRevoked, "API key has been revoked")
	errKeyExpired   = keyhub.Errorf(keyhub.CodeKeyExpired, "API key has expired")
)

func (c *ApiKeyCache) load(ctx context.Context, keyHash [32]byte) (*cachedKey, error) {
	gen := c.generation.Load()
	found, err := c.store.KeyForAuth(ctx, apikey.HexOfHash(keyHash))
	if keyhub.ErrorCode(err) == keyhub.CodeNotFound {
		c.unknown.Add(keyHash, struct{}{})
		return nil, errUnknownKey
	}
	if err != nil {
		return nil, err
	}
	entry := &cachedKey{principal: found.Principal, revoked: found.RevokedAt != nil}
	if c.generation.Load() == gen {
		c.known.Add(keyHash, entry)
	}
	return entry, nil
}

// admit checks a known key's state on every use, cached or not: expiry is
// a matter of the clock, not of the cache.
func (c *ApiKeyCache) admit(entry *cachedKey) (*keyhub.Principal, error) {
	if entry.revoked {
		return nil, errKeyRevoked
	}
	now := c.now()
	if entry.principal.Expired(now) {
		return nil, errKeyExpired
	}
	if c.usage != nil {
		sec := now.Unix()
		last := entry.lastMarked.Load()
		if sec-last >= int64(c.usage.Interval()/time.Second) && entry.lastMarked.CompareAndSwap(last, sec) {
			c.usage.Mark(entry.principal.KeyID, now)
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

// KeyChanged implements keyhub.ChangeObserver.
func (c *ApiKeyCache) KeyChanged(change keyhub.KeyChange) { c.Invalidate(change.KeyHash) }

// EventWritten implements keyhub.ChangeObserver.
func (c *ApiKeyCache) EventWritten(keyhub.Event) {}

// Len reports how many verified and unknown keys the cache holds.
func (c *ApiKeyCache) Len() (known, unknown int) { return c.known.Len(), c.unknown.Len() }
