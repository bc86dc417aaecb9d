package auth

import "time"

// SetBeforeAdd makes c run fn between its database read and its insert,
// where a concurrent invalidation is hardest to get right.
func SetBeforeAdd(c *ApiKeyCache, fn func()) { c.beforeAdd = fn }

// TokenCacheLen reports how many verified tokens a holds.
func TokenCacheLen(a *Authenticator) int { return a.verified.len() }

// SetTokenCacheClock makes a's token cache read the time from now.
func SetTokenCacheClock(a *Authenticator, now func() time.Time) { a.verified.now = now }
