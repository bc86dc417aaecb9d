// Package usage counts the requests made with each API key, per hour and
// outcome class, in memory, and writes the counts in batches: the auth
// path adds to an atomic counter and never waits for the database.
package usage

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// shardCount spreads the keys over locks, so that requests of different
// keys on different cores do not share a lock's cache line.
const shardCount = 64

// Writer adds a batch of counts to what is stored. The batch is sorted by
// key and hour and holds each (key, hour) once, so that processes adding
// to the same rows lock them in one order and never deadlock each other.
type Writer func(ctx context.Context, counts []keyhub.UsageCount) error

// Counter holds the counts not yet written.
type Counter struct {
	write    Writer
	interval time.Duration
	log      *slog.Logger
	shards   [shardCount]shard

	// beforeIncrement, set by tests only, runs just before a counter is
	// incremented.
	beforeIncrement func(*shard)
}

type shard struct {
	// mu is held for reading while a counter is incremented and for
	// writing while Flush takes the map: an increment is either in the
	// taken map or in the next one, never lost between them.
	mu     sync.RWMutex
	counts map[slot]*counts
	_      [64]byte // keeps neighbouring shards' locks off one cache line
}

type slot struct {
	key  uuid.UUID
	hour int64 // Unix hours
}

type counts [keyhub.UsageOutcomes]atomic.Int64

// New returns a Counter that Run flushes through write every interval.
func New(write Writer, interval time.Duration, log *slog.Logger) *Counter {
	c := &Counter{write: write, interval: interval, log: log}
	for i := range c.shards {
		c.shards[i].counts = make(map[slot]*counts)
	}
	return c
}

// Add counts one request of key at at with outcome o. It allocates only
// the first time a key is seen in an hour since the last flush.
func (c *Counter) Add(key uuid.UUID, at time.Time, o keyhub.UsageOutcome) {
	c.add(slot{key: key, hour: at.Unix() / 3600}, o, 1)
}

func (c *Counter) add(k slot, o keyhub.UsageOutcome, n int64) {
	// The last byte is random in every UUID version (v7's first bytes are
	// a timestamp, shared by keys made in the same millisecond).
	s := &c.shards[k.key[15]%shardCount]
	s.mu.RLock()
	if cs := s.counts[k]; cs != nil {
		if c.beforeIncrement != nil {
			c.beforeIncrement(s)
		}
		cs[o].Add(n)
		s.mu.RUnlock()
		return
	}
	s.mu.RUnlock()
	s.mu.Lock()
	cs := s.counts[k]
	if cs == nil {
		cs = new(counts)
		s.counts[k] = cs
	}
	cs[o].Add(n)
	s.mu.Unlock()
}

// Run flushes every interval until ctx ends, then flushes once more.
func (c *Counter) Run(ctx context.Context) {
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			_ = c.Flush(ctx)
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = c.Flush(final)
			cancel()
			return
		}
	}
}

// Flush writes the counts taken so far. Counts a failed write held are
// added back and written by a later flush.
func (c *Counter) Flush(ctx context.Context) error {
	batch := c.take()
	if len(batch) == 0 {
		return nil
	}
	err := c.write(ctx, batch)
	if err == nil {
		return nil
	}
	c.log.Warn("usage flush failed; will retry", "count", len(batch), "err", err)
	for _, u := range batch {
		k := slot{key: u.KeyID, hour: u.Hour.Unix() / 3600}
		for o, n := range u.Counts {
			if n != 0 {
				c.add(k, keyhub.UsageOutcome(o), n)
			}
		}
	}
	return err
}

// take empties every shard and returns what they held, sorted by key and
// hour.
func (c *Counter) take() []keyhub.UsageCount {
	var batch []keyhub.UsageCount
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		taken := s.counts
		if len(taken) == 0 {
			s.mu.Unlock()
			continue
		}
		s.counts = make(map[slot]*counts, len(taken))
		s.mu.Unlock()
		for k, cs := range taken {
			u := keyhub.UsageCount{KeyID: k.key, Hour: time.Unix(k.hour*3600, 0).UTC()}
			for o := range cs {
				u.Counts[o] = cs[o].Load()
			}
			batch = append(batch, u)
		}
	}
	slices.SortFunc(batch, func(a, b keyhub.UsageCount) int {
		if c := bytes.Compare(a.KeyID[:], b.KeyID[:]); c != 0 {
			return c
		}
		return a.Hour.Compare(b.Hour)
	})
	return batch
}
