package auth

// SetBeforeAdd makes c run fn between its database read and its insert,
// where a concurrent invalidation is hardest to get right.
func SetBeforeAdd(c *ApiKeyCache, fn func()) { c.beforeAdd = fn }
