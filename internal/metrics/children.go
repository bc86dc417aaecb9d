package metrics

import (
	"sync"
	"sync/atomic"
)

// children caches the children of a labelled collector by a comparable
// key. Reads are one atomic load and a map lookup: no lock, no allocation
// (WithLabelValues would hash and allocate on every call). A new label set
// copies the map; label sets are few and bounded, so that is rare.
type children[K comparable, C any] struct {
	make func(K) C

	mu      sync.Mutex // serialises writers
	current atomic.Pointer[map[K]C]
}

func (c *children[K, C]) get(key K) C {
	if m := c.current.Load(); m != nil {
		if child, ok := (*m)[key]; ok {
			return child
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.current.Load()
	if old != nil {
		if child, ok := (*old)[key]; ok {
			return child
		}
	}
	next := make(map[K]C, 1)
	if old != nil {
		next = make(map[K]C, len(*old)+1)
		for k, v := range *old {
			next[k] = v
		}
	}
	child := c.make(key)
	next[key] = child
	c.current.Store(&next)
	return child
}
