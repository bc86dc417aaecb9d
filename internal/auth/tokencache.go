package auth

import (
	"context"
	"crypto/sha256"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/keyhub/keyhub/internal/jwtverify"
)

// tokenCache remembers the claims of access tokens whose signature and
// claims verified, so a dashboard session pays the signature check (ES256
// ≈80 µs, most of a JWT request) once rather than on every request.
//
// What it may and may not do:
//   - only tokens that verified are added: a flood of distinct invalid
//     tokens never enters it and so cannot evict the working set;
//   - an entry is served only before the token's exp, exactly (no leeway):
//     past exp the token goes through full verification again, which
//     applies the configured leeway and refuses it in time;
//   - an entry is served only while the JWKS generation read before its
//     verification is current: a key that a refresh removed or replaced
//     stops vouching for its tokens at once;
//   - it holds claims, not principals: the user's tier and owner come from
//     the user cache on every request, which the change feed invalidates
//     (PrincipalChanged, FeedDown's stale bound, FeedUp), so a cached token
//     never carries a stale tier.
type tokenCache struct {
	verifier TokenVerifier
	tokens   *lru.Cache[[32]byte, *cachedToken]
	now      func() time.Time
}

type cachedToken struct {
	claims jwtverify.Claims
	// keySetGeneration is the verifier's KeySetGeneration read before the
	// token was verified.
	keySetGeneration uint64
}

func newTokenCache(verifier TokenVerifier, size int, now func() time.Time) *tokenCache {
	tokens, err := lru.New[[32]byte, *cachedToken](size)
	if err != nil {
		panic(err) // size is positive: New checks it
	}
	return &tokenCache{verifier: verifier, tokens: tokens, now: now}
}

// verify returns the claims of a valid token, from the cache when allowed.
func (c *tokenCache) verify(ctx context.Context, token string) (jwtverify.Claims, error) {
	tokenHash := hashToken(token)
	// Read before verifying: if the key set changes while the signature is
	// checked against the old one, the entry is born stale.
	generation := c.verifier.KeySetGeneration()
	if entry, ok := c.tokens.Get(tokenHash); ok {
		if entry.keySetGeneration == generation && c.now().Before(entry.claims.ExpiresAt) {
			return entry.claims, nil
		}
		c.tokens.Remove(tokenHash)
	}
	claims, err := c.verifier.Verify(ctx, token)
	if err != nil {
		return jwtverify.Claims{}, err
	}
	if c.now().Before(claims.ExpiresAt) { // within the leeway: verified, not kept
		c.tokens.Add(tokenHash, &cachedToken{claims: claims, keySetGeneration: generation})
	}
	return claims, nil
}

// tokenHashStackLen covers Supabase access tokens (under 2 KiB) without a
// heap allocation for the []byte conversion; longer ones allocate.
const tokenHashStackLen = 2 << 10

// hashToken is the SHA-256 of the whole token, the cache's key: the raw
// token is never kept, and any change to it (signature bytes included) is
// another entry.
func hashToken(token string) [32]byte {
	if len(token) <= tokenHashStackLen {
		var buf [tokenHashStackLen]byte
		n := copy(buf[:], token)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(token))
}

// len reports how many verified tokens the cache holds.
func (c *tokenCache) len() int { return c.tokens.Len() }
