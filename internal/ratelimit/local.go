package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// localShards spreads keys over independent locks, so concurrent requests
// for different keys rarely wait on each other.
const localShards = 64

// Local is the in-process Limiter. It keeps one int64 per key in sharded
// LRUs of bounded total size: the least recently used key is forgotten
// first, and a forgotten key has a full bucket again (so a flood of new keys
// can only make limits more lenient for old ones, never use more memory).
type Local struct {
	seed   maphash.Seed
	shards [localShards]localShard
	now    func() time.Time
}

type localShard struct {
	mu   sync.Mutex
	tats *simplelru.LRU[string, int64]
}

// NewLocal returns an in-process limiter remembering at most size keys
// (at least one per shard).
func NewLocal(size int) *Local {
	l := &Local{seed: maphash.MakeSeed(), now: time.Now}
	perShard := max(size/localShards, 1)
	for i := range l.shards {
		l.shards[i].tats, _ = simplelru.NewLRU[string, int64](perShard, nil) // only errors on size ≤ 0
	}
	return l
}

func (l *Local) shard(key string) *localShard {
	return &l.shards[maphash.String(l.seed, key)%localShards]
}

// Allow implements Limiter; it never fails.
func (l *Local) Allow(_ context.Context, key string, limit Limit) (Result, error) {
	now := l.now().UnixNano()
	s := l.shard(key)
	s.mu.Lock()
	tat, _ := s.tats.Get(key)
	newTat, res := gcra(tat, now, limit)
	if res.Allowed {
		s.tats.Add(key, newTat)
	}
	s.mu.Unlock()
	return res, nil
}

// Blocked implements Limiter.
func (l *Local) Blocked(key string, limit Limit) (time.Duration, bool) {
	s := l.shard(key)
	s.mu.Lock()
	tat, ok := s.tats.Peek(key)
	s.mu.Unlock()
	if !ok {
		return 0, false
	}
	wait := blockedFor(tat, l.now().UnixNano(), limit)
	return wait, wait > 0
}

// Len reports how many keys are remembered.
func (l *Local) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += s.tats.Len()
		s.mu.Unlock()
	}
	return n
}
