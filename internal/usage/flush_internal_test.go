package usage

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// A flush cannot take a shard while a counter of it is being
// incremented: the increment is then certain to be in the map the flush
// takes or in the next one. Were the read lock released before the
// increment, a flush could read the counter and drop it in between, and
// the request would be lost (too rare for a stress test to catch).
func TestIncrementHoldsShardAgainstFlush(t *testing.T) {
	c := New(func(context.Context, []keyhub.UsageCount) error { return nil }, time.Hour, slog.New(slog.DiscardHandler))
	k, at := uuid.New(), time.Now()
	c.Add(k, at, keyhub.UsageOK) // the slot exists: the next Add takes the fast path
	checked := false
	c.beforeIncrement = func(s *shard) {
		checked = true
		if s.mu.TryLock() {
			s.mu.Unlock()
			t.Fatal("a flush could take the shard while a counter of it is being incremented")
		}
	}
	c.Add(k, at, keyhub.UsageOK)
	if !checked {
		t.Fatal("the increment hook did not run")
	}
}
