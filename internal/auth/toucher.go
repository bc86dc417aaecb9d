package auth

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// Toucher coalesces "last used" timestamps in memory and writes them in one
// batched statement per interval, so that using a key costs no database
// write. A failed flush keeps its timestamps for the next one.
type Toucher struct {
	name     string
	write    TouchWriter
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	pending map[uuid.UUID]touch
}

// touch is the latest use of an id: when, and where from.
type touch struct {
	at   time.Time
	from keyhub.RequestMeta
}

// TouchWriter writes a batch of "last used" timestamps (ids[i] used at
// at[i], from from[i]). It may skip rows it would have to wait for
// (another process flushing the same keys, a write holding the row) rather
// than wait: it returns those ids, and the Toucher writes them at its next
// flush.
type TouchWriter func(ctx context.Context, ids []uuid.UUID, at []time.Time, from []keyhub.RequestMeta) (skipped []uuid.UUID, err error)

// NewToucher returns a Toucher that flushes through write every interval.
func NewToucher(name string, write TouchWriter, interval time.Duration, log *slog.Logger) *Toucher {
	return &Toucher{name: name, write: write, interval: interval, log: log, pending: make(map[uuid.UUID]touch)}
}

// maxHeldUserAgent bounds the bytes of a User-Agent held until the flush
// (the database keeps 512 characters, at most 4 bytes each): a megabyte
// header must not stay in memory for an interval.
const maxHeldUserAgent = 512 * 4

// Interval is how often Run flushes.
func (t *Toucher) Interval() time.Duration { return t.interval }

// Mark records that id was used at at, from nowhere known.
func (t *Toucher) Mark(id uuid.UUID, at time.Time) { t.MarkFrom(id, at, keyhub.RequestMeta{}) }

// MarkFrom records that id was used at at, from from.
func (t *Toucher) MarkFrom(id uuid.UUID, at time.Time, from keyhub.RequestMeta) {
	if len(from.UserAgent) > maxHeldUserAgent {
		from.UserAgent = strings.Clone(from.UserAgent[:maxHeldUserAgent])
	}
	t.mu.Lock()
	if prev, ok := t.pending[id]; !ok || at.After(prev.at) {
		t.pending[id] = touch{at: at, from: from}
	}
	t.mu.Unlock()
}

// Run flushes every interval until ctx ends, then flushes once more.
func (t *Toucher) Run(ctx context.Context) {
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.Flush(ctx)
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			t.Flush(final)
			cancel()
			return
		}
	}
}

// Flush writes what is pending. On failure the timestamps go back into
// the pending set (unless newer ones arrived meanwhile) and are retried;
// so do those the writer skipped.
func (t *Toucher) Flush(ctx context.Context) error {
	t.mu.Lock()
	batch := t.pending
	t.pending = make(map[uuid.UUID]touch, len(batch))
	t.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, 0, len(batch))
	ats := make([]time.Time, 0, len(batch))
	froms := make([]keyhub.RequestMeta, 0, len(batch))
	for id, use := range batch {
		ids = append(ids, id)
		ats = append(ats, use.at)
		froms = append(froms, use.from)
	}
	skipped, err := t.write(ctx, ids, ats, froms)
	if err == nil {
		for _, id := range skipped {
			if use, ok := batch[id]; ok {
				t.MarkFrom(id, use.at, use.from)
			}
		}
		return nil
	}
	t.log.Warn("flush failed; will retry", "what", t.name, "count", len(ids), "err", err)
	for i, id := range ids {
		t.MarkFrom(id, ats[i], froms[i])
	}
	return err
}
