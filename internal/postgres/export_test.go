package postgres

// SetBeforeLock makes every key write of s run fn inside its transaction,
// before it takes any lock.
func SetBeforeLock(s *Store, fn func()) { s.beforeLock = fn }
