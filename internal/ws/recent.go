package ws

import (
	"time"

	"github.com/google/uuid"
)

// endedKeyMemory is how long the hub remembers what a change said about a
// key (ended, disabled, its scopes) for register's check: far longer than
// any resolve-to-register window.
const endedKeyMemory = time.Minute

// recentKeys remembers a value per key heard from the change feed lately,
// so that register can refuse (or narrow) a socket admitted just before
// the change reached the hub. Entries older than endedKeyMemory are swept
// at most once per endedKeyMemory, not on every change: a burst of changes
// costs no quadratic time under the hub's lock. The hub's mu guards it.
type recentKeys[V any] struct {
	entries map[uuid.UUID]recentEntry[V]
	swept   time.Time
}

type recentEntry[V any] struct {
	value V
	at    time.Time
}

func newRecentKeys[V any]() recentKeys[V] {
	return recentKeys[V]{entries: make(map[uuid.UUID]recentEntry[V])}
}

// remember records value for id as heard at now.
func (r *recentKeys[V]) remember(id uuid.UUID, value V, now time.Time) {
	if now.Sub(r.swept) > endedKeyMemory {
		for old, e := range r.entries {
			if now.Sub(e.at) > endedKeyMemory {
				delete(r.entries, old)
			}
		}
		r.swept = now
	}
	r.entries[id] = recentEntry[V]{value: value, at: now}
}

// lookup is the value last remembered for id, if any.
func (r *recentKeys[V]) lookup(id uuid.UUID) (V, bool) {
	e, ok := r.entries[id]
	return e.value, ok
}

// forget drops what was remembered for id.
func (r *recentKeys[V]) forget(id uuid.UUID) { delete(r.entries, id) }
